"""Trading sessions per instrument type: which bar timestamps a market is expected to produce.

Pure Python + pandas. Sessions are defined in New York time (where the FX week opens and closes at
17:00 and US equities trade 09:30-16:00), so daylight-saving shifts come out right in UTC:
the FX week opens Sunday 21:00Z in summer and 22:00Z in winter, as the real EURUSD data shows.
The synthetic source, the IB simulator and gap analysis all use this one definition, so an
"expected gap" (weekend, session close, holiday) means the same everywhere.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache

import numpy as np
import pandas as pd

from marketdata.timeframes import Timeframe

NEW_YORK = "America/New_York"
FX_ROLL_MINUTE = 17 * 60  # the FX week and trading day roll at 17:00 New York
EQUITY_OPEN_MINUTE = 9 * 60 + 30
EQUITY_CLOSE_MINUTE = 16 * 60


def _easter(year: int) -> date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month, day = divmod(h + l_ - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    offset = (weekday - first.weekday()) % 7
    return first + timedelta(days=offset + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    last = nxt - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _observed(day: date) -> date:
    if day.weekday() == 5:
        return day - timedelta(days=1)
    if day.weekday() == 6:
        return day + timedelta(days=1)
    return day


@lru_cache(maxsize=128)
def equity_holidays(year: int) -> frozenset[date]:
    """NYSE full-day holidays of `year` (the regular rules; one-off closures are not modelled)."""
    days = {
        _observed(date(year, 1, 1)),
        _nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day
        _nth_weekday(year, 2, 0, 3),  # Washington's Birthday
        _easter(year) - timedelta(days=2),  # Good Friday
        _last_weekday(year, 5, 0),  # Memorial Day
        _observed(date(year, 7, 4)),
        _nth_weekday(year, 9, 0, 1),  # Labor Day
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving
        _observed(date(year, 12, 25)),
    }
    if year >= 2022:
        days.add(_observed(date(year, 6, 19)))
    return frozenset(days)


def is_equity_holiday(day: date) -> bool:
    return day in equity_holidays(day.year)


def _local(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    return index.tz_convert(NEW_YORK)


def open_mask(asset_class: str, index: pd.DatetimeIndex) -> np.ndarray:
    """True where the market is open at each (UTC, tz-aware) instant of `index`."""
    if len(index) == 0:
        return np.zeros(0, dtype=bool)
    # New York wall-clock time, converted once: fields of a naive index need no tz lookups.
    local = _local(index).tz_localize(None)
    weekday = np.asarray(local.day_of_week)
    minute = np.asarray(local.hour * 60 + local.minute)
    month = np.asarray(local.month)
    day = np.asarray(local.day)
    if asset_class == "forex":
        mask = (weekday <= 3) | ((weekday == 4) & (minute < FX_ROLL_MINUTE))
        mask |= (weekday == 6) & (minute >= FX_ROLL_MINUTE)
        # Christmas and New Year: the trading day that would run from 17:00 on the eve to 17:00
        # on the holiday does not happen.
        for m, d in ((12, 25), (1, 1)):
            holiday = (month == m) & (day == d) & (minute < FX_ROLL_MINUTE)
            eve_m, eve_d = (12, d - 1) if m == 12 else (12, 31)
            eve = (month == eve_m) & (day == eve_d) & (minute >= FX_ROLL_MINUTE)
            mask &= ~(holiday | eve)
        return mask
    mask = (weekday <= 4) & (minute >= EQUITY_OPEN_MINUTE) & (minute < EQUITY_CLOSE_MINUTE)
    if mask.any():
        dates = local.normalize()
        years = range(int(local.year.min()), int(local.year.max()) + 1)
        holidays = pd.DatetimeIndex(sorted(d for y in years for d in equity_holidays(y)))
        mask &= ~dates.isin(holidays)
    return mask


def trading_days(asset_class: str, start: date, end: date) -> list[date]:
    """Dates in [start, end) that have a daily bar (weekdays, minus the instrument's holidays)."""
    days = []
    day = start
    while day < end:
        if day.weekday() < 5:
            if asset_class == "forex":
                if (day.month, day.day) not in {(12, 25), (1, 1)}:
                    days.append(day)
            elif not is_equity_holiday(day):
                days.append(day)
        day += timedelta(days=1)
    return days


def _as_utc(ts: datetime | pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(ts)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def expected_bar_times(
    asset_class: str, timeframe: Timeframe, start: datetime, end: datetime
) -> pd.DatetimeIndex:
    """Start timestamps (UTC) of every bar the market should produce in [start, end).

    Daily bars are stamped at 00:00 UTC of their trading date. Intraday FX bars sit on a grid of
    the bar size from the epoch (whole hours for 1h); equity bars start at each session open.
    """
    lo, hi = _as_utc(start), _as_utc(end)
    empty = pd.DatetimeIndex([], tz="UTC", name="timestamp")
    if hi <= lo:
        return empty
    if timeframe.is_daily:
        first = lo.normalize() if lo == lo.normalize() else lo.normalize() + pd.Timedelta(days=1)
        days = trading_days(
            asset_class,
            first.date(),
            (hi - pd.Timedelta(microseconds=1)).date() + timedelta(days=1),
        )
        index = pd.DatetimeIndex([pd.Timestamp(d) for d in days], name="timestamp")
        index = index.tz_localize("UTC") if len(index) else empty
        return index[(index >= lo) & (index < hi)]
    step = pd.Timedelta(timeframe.step)
    if asset_class == "forex":
        first = lo.ceil(step)
        grid = pd.date_range(first, hi, freq=step, inclusive="left", name="timestamp")
        return grid[open_mask(asset_class, grid)]
    # Equities: per trading day, bars from the open every `step` until the close (built for all
    # days at once: the opens in UTC, plus the session's offsets).
    local_lo = lo.tz_convert(NEW_YORK).date() - timedelta(days=1)
    local_hi = hi.tz_convert(NEW_YORK).date() + timedelta(days=1)
    days = trading_days(asset_class, local_lo, local_hi)
    if not days:
        return empty
    opens = (
        pd.DatetimeIndex(days).tz_localize(NEW_YORK) + pd.Timedelta(minutes=EQUITY_OPEN_MINUTE)
    ).tz_convert("UTC")
    session = pd.Timedelta(minutes=EQUITY_CLOSE_MINUTE - EQUITY_OPEN_MINUTE).value
    per_day = -(-session // step.value)
    offsets = np.arange(per_day, dtype=np.int64) * step.value
    stamps = (opens.as_unit("ns").asi8[:, None] + offsets).ravel()
    index = pd.DatetimeIndex(pd.to_datetime(stamps, utc=True), name="timestamp")
    return index[(index >= lo) & (index < hi)]
