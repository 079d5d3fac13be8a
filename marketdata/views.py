"""Market-data pages: the series list with the load and upload forms, and a series page with an
inline SVG price chart. Function views, login required; forms post back with CSRF and work
without JavaScript."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from marketdata import selectors, services, store
from marketdata.charts import price_chart
from marketdata.planner import MODES
from marketdata.symbols import SYNTHETIC_UNIVERSE
from marketdata.timeframes import TIMEFRAMES
from operations.exceptions import InvalidInput, KtrdrError, NotFound

CHART_BARS = 2000


def _list_context(request: HttpRequest, **extra) -> dict:
    return {
        "series": list(selectors.series_list()),
        "timeframes": list(TIMEFRAMES),
        "modes": MODES,
        "sources": services.LOAD_SOURCES,
        "symbols": sorted(SYNTHETIC_UNIVERSE),
        "on_conflict_choices": store.ON_CONFLICT,
        "form": extra.pop("form", {}),
        **extra,
    }


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
    return render(request, "marketdata/series_list.html", _list_context(request, form=form))


@require_GET
@login_required
def series_detail(request: HttpRequest, symbol: str, timeframe: str) -> HttpResponse:
    try:
        series = selectors.series_get(symbol=symbol, timeframe=timeframe)
        window = selectors.bars_window(
            symbol=series.symbol, timeframe=series.timeframe, limit=CHART_BARS
        )
    except (NotFound, InvalidInput) as exc:
        raise Http404(exc.message) from None
    return render(
        request,
        "marketdata/series_detail.html",
        {
            "s": series,
            "chart": price_chart(window.frame),
            "window": window,
            "recent": list(window.frame.tail(10).iloc[::-1].itertuples()),
            "timeframes": list(TIMEFRAMES),
            "modes": MODES,
            "sources": services.LOAD_SOURCES,
        },
    )


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
