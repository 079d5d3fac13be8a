"""Market-data pages: the series list with the load and upload forms, and a series page with its
price chart (uPlot, drawn by static/ktrdr/live.js from a JSON data block) over a chosen range.
Function views, login required; forms post back with CSRF and work without JavaScript.

The list's table and a series page's facts are polled fragments (`operations.polling`): the list
always (loads started anywhere add series), a series page while a load of it runs."""

from __future__ import annotations

import time

import pandas as pd
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from marketdata import selectors, services, store
from marketdata.planner import MODES
from marketdata.symbols import SYNTHETIC_UNIVERSE
from marketdata.timeframes import TIMEFRAMES
from operations import polling
from operations.exceptions import InvalidInput, KtrdrError, NotFound

# Bars the price chart draws at most (the newest of the chosen range).
CHART_BARS = 2000
# The chart draws candles while it shows this many bars or fewer (zoomed in), else the close line
# with its high-low band.
CANDLE_BARS = 150
# How often the list and a series page poll (live.js slows down while nothing changes).
POLL_SECONDS = 2
# A range bound is a date or a timestamp: longer input is refused before it is parsed.
MAX_BOUND_LENGTH = 40


def _list_context(request: HttpRequest, **extra) -> dict:
    return {
        "series": list(selectors.series_list()),
        "timeframes": list(TIMEFRAMES),
        "modes": MODES,
        "sources": services.LOAD_SOURCES,
        "symbols": sorted(SYNTHETIC_UNIVERSE),
        "on_conflict_choices": store.ON_CONFLICT,
        "form": extra.pop("form", {}),
        "poll_seconds": POLL_SECONDS,
        **extra,
    }


def _series_state(s) -> tuple:
    return (s.symbol, s.timeframe, s.source, s.row_count, s.first_timestamp, s.last_timestamp,
            s.unexpected_gaps, s.updated_at)  # fmt: skip


def _loads_state(loads) -> list[tuple]:
    return [(op.operation_id, op.status, round(op.percentage or 0.0)) for op in loads]


@require_GET
@login_required
def series_list(request: HttpRequest) -> HttpResponse:
    # "Edit and run" of a finished load opens the form pre-filled (`?symbol=…&mode=…`); the
    # values are only shown here, and checked when the form is posted.
    form = {
        k: request.GET[k][:32]
        for k in ("symbol", "timeframe", "start", "end", "mode", "source")
        if k in request.GET
    }
    context = _list_context(request, form=form)
    loads = selectors.active_loads()
    # "Updated 3 minutes ago" moves on its own: the ETag changes once a minute for it.
    etag = polling.etag_of(
        [_series_state(s) for s in context["series"]], _loads_state(loads), int(time.time() // 60)
    )
    poll = polling.is_poll(request, "series-table")
    if poll and (unchanged := polling.not_modified(request, etag)) is not None:
        return unchanged
    context.update(loads=loads, etag=etag)
    if poll:
        response = render(request, "marketdata/series_list.html#series-table", context)
        return polling.fragment(response, etag)
    return render(request, "marketdata/series_list.html", context)


def _ohlc_rows(frame: pd.DataFrame) -> list[list]:
    """[unix seconds, open, high, low, close] per bar: the price chart's data block."""
    seconds = (frame.index.asi8 // 1_000_000_000).tolist()
    columns = [frame[c].tolist() for c in ("open", "high", "low", "close")]
    return [list(row) for row in zip(seconds, *columns, strict=True)]


def _bound(request: HttpRequest, field: str) -> str:
    value = request.GET.get(field, "").strip()
    if len(value) > MAX_BOUND_LENGTH:
        raise InvalidInput(f"{field} is longer than {MAX_BOUND_LENGTH} characters", field=field)
    return value


def _range(request: HttpRequest) -> tuple[str, str, pd.Timestamp | None, pd.Timestamp | None]:
    """The chosen range, `start` ≤ t < `end` (dates or timestamps, UTC; either may be empty)."""
    start, end = _bound(request, "start"), _bound(request, "end")
    lo, hi = selectors.bars_range(start=start, end=end)
    return start, end, lo, hi


@require_GET
@login_required
def series_detail(request: HttpRequest, symbol: str, timeframe: str) -> HttpResponse:
    try:
        series = selectors.series_get(symbol=symbol, timeframe=timeframe)
    except (NotFound, InvalidInput) as exc:
        raise Http404(exc.message) from None
    loads = selectors.active_loads(symbol=series.symbol, timeframe=series.timeframe)
    etag = polling.etag_of(_series_state(series), _loads_state(loads))
    context = {"s": series, "loads": loads, "etag": etag, "poll_seconds": POLL_SECONDS}
    if polling.is_poll(request, "series-live"):
        context["polled"] = True
        if (unchanged := polling.not_modified(request, etag)) is not None:
            return unchanged
        response = render(request, "marketdata/series_detail.html#series-live", context)
        return polling.fragment(response, etag)
    context.update(timeframes=list(TIMEFRAMES), modes=MODES, sources=services.LOAD_SOURCES)
    try:
        start, end, lo, hi = _range(request)
    except InvalidInput as exc:
        # The form shows what was asked (bounded), to be corrected.
        context.update(
            range_error=exc.message,
            range_error_field=exc.field,
            start=request.GET.get("start", "")[:MAX_BOUND_LENGTH],
            end=request.GET.get("end", "")[:MAX_BOUND_LENGTH],
        )
        return render(request, "marketdata/series_detail.html", context, status=400)
    # Only the bars of the range are read, the newest CHART_BARS of them (`store.read_window`).
    window = selectors.bars_window(
        symbol=series.symbol, timeframe=series.timeframe, start=lo, end=hi, limit=CHART_BARS
    )
    frame = window.frame
    context.update(
        candle_bars=CANDLE_BARS,
        start=start,
        end=end,
        window=window,
        chart_bars=_ohlc_rows(frame),
        recent=list(frame.tail(10).iloc[::-1].itertuples()),
    )
    return render(request, "marketdata/series_detail.html", context)


@require_POST
@login_required
def load_create(request: HttpRequest) -> HttpResponse:
    form = {k: request.POST.get(k, "") for k in ("symbol", "timeframe", "start", "end", "mode",
                                                 "source")}  # fmt: skip
    try:
        op = services.data_load_start(
            symbol=form["symbol"],
            timeframe=form["timeframe"],
            start=form["start"] or None,
            end=form["end"] or None,
            mode=form["mode"] or "tail",
            source=form["source"] or "synthetic",
            user=request.user,
        )
    except KtrdrError as exc:
        field = getattr(exc, "field", None) or ""
        return render(
            request,
            "marketdata/series_list.html",
            _list_context(request, form=form, load_error=exc.message, load_error_field=field),
            status=exc.status_code,
        )
    messages.success(request, f"Started {op.operation_id}")
    return redirect("operations:detail", operation_id=op.operation_id)


@require_POST
@login_required
def import_create(request: HttpRequest) -> HttpResponse:
    form = {k: request.POST.get(k, "") for k in ("symbol", "timeframe", "on_conflict")}
    upload = request.FILES.get("file")
    try:
        if upload is None:
            raise InvalidInput("choose a CSV file to upload", field="file")
        result = services.bars_import_csv(
            data=services.csv_upload_read(upload=upload),
            symbol=form["symbol"],
            timeframe=form["timeframe"],
            filename=upload.name or "upload.csv",
            on_conflict=form["on_conflict"] or "reject",
        )
    except KtrdrError as exc:
        return render(
            request,
            "marketdata/series_list.html",
            _list_context(request, import_form=form, import_error=exc.message),
            status=exc.status_code,
        )
    messages.success(
        request,
        f"Imported {result.bars_written} bars into {result.symbol} {result.timeframe}: "
        f"{result.bars_added} new, {result.bars_replaced} replaced, {result.bars_kept} kept as "
        f"stored, {result.bars_unchanged} unchanged",
    )
    for warning in result.warnings:
        messages.warning(request, f"Warning: {warning}")
    return redirect("marketdata:series-detail", symbol=result.symbol, timeframe=result.timeframe)
