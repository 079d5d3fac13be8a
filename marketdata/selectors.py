"""Every read of the marketdata app: the series catalogue and bar windows for pages and the API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from django.db.models import QuerySet

from marketdata import store
from marketdata.models import BarSeries
from marketdata.symbols import parse_symbol
from marketdata.timeframes import get_timeframe
from operations.exceptions import InvalidInput
from operations.models import ACTIVE_STATUSES, Operation

# Active loads a page lists at most (its fragment stays the same size whatever runs).
ACTIVE_LOADS_LIMIT = 10


def series_list(*, symbol: str | None = None, timeframe: str | None = None) -> QuerySet:
    qs = BarSeries.objects.all()
    if symbol:
        qs = qs.filter(symbol=parse_symbol(symbol).symbol)
    if timeframe:
        qs = qs.filter(timeframe=get_timeframe(timeframe).name)
    return qs.order_by("symbol", "timeframe")


def series_get(*, symbol: str, timeframe: str) -> BarSeries:
    sym, tf = parse_symbol(symbol).symbol, get_timeframe(timeframe).name
    series = BarSeries.objects.filter(symbol=sym, timeframe=tf).first()
    if series is None:
        raise store.SeriesNotFound(sym, tf)
    return series


def bars_range(*, start: object, end: object) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """A range [start, end) of dates or timestamps as UTC (None: open); InvalidInput naming the
    field for a bound that is not one, or an end not after the start."""
    lo, hi = store.parse_bound(start, "start"), store.parse_bound(end, "end")
    if lo is not None and hi is not None and lo >= hi:
        raise InvalidInput("end must be after start", field="end")
    return lo, hi


def active_loads(*, symbol: str | None = None, timeframe: str | None = None) -> list[Operation]:
    """The data loads still running (database only, newest first, at most ACTIVE_LOADS_LIMIT),
    of one series when `symbol` and `timeframe` are given."""
    qs = Operation.objects.filter(operation_type="data_load", status__in=ACTIVE_STATUSES)
    if symbol and timeframe:
        qs = qs.filter(metadata__symbol=symbol, metadata__timeframe=timeframe)
    return list(qs.order_by("-created_at")[:ACTIVE_LOADS_LIMIT])


@dataclass(frozen=True)
class BarWindow:
    """A capped slice of bars: the *last* `limit` bars in [start, end) and how many there were."""

    frame: pd.DataFrame
    total_in_range: int
    truncated: bool
    next_end: pd.Timestamp | None  # pass as `end` to get the bars before this window


def bars_window(*, symbol: str, timeframe: str, start=None, end=None, limit: int) -> BarWindow:
    """Bars in [start, end), at most `limit`, the most recent ones when there are more.

    Rule (documented in the API): if the range holds more than `limit` bars, the answer has the
    latest `limit` of them, `truncated=true` and `next_end` = the first returned timestamp;
    asking again with end=next_end pages backwards.
    """
    if limit < 1:
        raise InvalidInput("limit must be ≥ 1", field="limit")
    # Only the row groups holding these bars are decoded, not the series (`store.read_window`).
    frame, total = store.read_window(symbol, timeframe, start, end, limit=limit)
    truncated = total > limit
    next_end = frame.index[0] if truncated and len(frame) else None
    return BarWindow(frame=frame, total_in_range=total, truncated=truncated, next_end=next_end)


def bar_provenance(*, symbol: str, timeframe: str, at: Any) -> dict[str, Any] | None:
    """Where the stored bar at `at` came from: the newest provenance range of the series that
    covers it (`marketdata.store`), or None when no range does. A `scattered` range only spans
    its bars, which lie between older ones."""
    series = series_get(symbol=symbol, timeframe=timeframe)
    stamp = pd.Timestamp(at)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    for entry in reversed(series.provenance or []):
        if pd.Timestamp(entry["start"]) <= stamp <= pd.Timestamp(entry["end"]):
            return entry
    return None
