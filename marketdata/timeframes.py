"""Supported bar timeframes and how each maps to Interactive Brokers' request vocabulary.

Pure Python (no Django): the planner, the simulator and the store all share this one table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from operations.exceptions import InvalidInput


@dataclass(frozen=True)
class Timeframe:
    name: str
    step: timedelta
    ib_bar_size: str
    # Practical per-request span (IB's historical-data limits): IB returns "a few thousand"
    # bars per request, these spans stay under that for every bar size.
    max_request_span: timedelta

    @property
    def seconds(self) -> int:
        return int(self.step.total_seconds())

    @property
    def is_daily(self) -> bool:
        return self.step >= timedelta(days=1)


TIMEFRAMES: dict[str, Timeframe] = {
    tf.name: tf
    for tf in (
        Timeframe("1m", timedelta(minutes=1), "1 min", timedelta(days=1)),
        Timeframe("5m", timedelta(minutes=5), "5 mins", timedelta(days=7)),
        Timeframe("15m", timedelta(minutes=15), "15 mins", timedelta(days=14)),
        Timeframe("30m", timedelta(minutes=30), "30 mins", timedelta(days=30)),
        Timeframe("1h", timedelta(hours=1), "1 hour", timedelta(days=30)),
        Timeframe("4h", timedelta(hours=4), "4 hours", timedelta(days=120)),
        Timeframe("1d", timedelta(days=1), "1 day", timedelta(days=365)),
    )
}

IB_BAR_SIZES = {tf.ib_bar_size: tf for tf in TIMEFRAMES.values()}

# Aliases people type; the canonical name is what is stored.
_ALIASES = {
    "1min": "1m",
    "5min": "5m",
    "15min": "15m",
    "30min": "30m",
    "60m": "1h",
    "1hour": "1h",
    "h1": "1h",
    "4hour": "4h",
    "h4": "4h",
    "d": "1d",
    "1day": "1d",
    "daily": "1d",
}


def get_timeframe(name: object) -> Timeframe:
    """The timeframe called `name`; InvalidInput (field "timeframe") for anything else."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("timeframe is required", field="timeframe")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    try:
        return TIMEFRAMES[key]
    except KeyError:
        raise InvalidInput(
            f"unsupported timeframe {name!r}; use one of {', '.join(TIMEFRAMES)}",
            field="timeframe",
        ) from None


def ib_duration_for(span: timedelta, timeframe: Timeframe) -> str:
    """The smallest IB duration string that covers `span`, always rounded *up*.

    IB rejects the `H` unit (error 321); seconds are allowed up to a day for intraday bars, days
    up to a year, then years. Rounding down (e.g. to whole weeks) silently drops bars, so every
    unit here is rounded up and the loader filters to the exact segment afterwards.
    """
    seconds = max(int(span.total_seconds() + 0.999999), 1)
    day = 86_400
    if not timeframe.is_daily and seconds <= day:
        # Stepping in seconds keeps small segments small (1 min bars use at most 1 day).
        return f"{seconds} S"
    days = -(-seconds // day)
    if days <= 365:
        return f"{days} D"
    years = -(-days // 365)
    return f"{years} Y"


def parse_ib_duration(duration: str) -> timedelta:
    """Inverse of `ib_duration_for` (the simulator uses it); ValueError on anything else."""
    parts = duration.strip().split()
    if len(parts) != 2 or not parts[0].isdigit():
        raise ValueError(f"malformed duration {duration!r}")
    amount, unit = int(parts[0]), parts[1].upper()
    factors = {"S": 1, "D": 86_400, "W": 7 * 86_400, "M": 31 * 86_400, "Y": 366 * 86_400}
    if unit not in factors or amount <= 0:
        raise ValueError(f"unsupported duration unit in {duration!r}")
    return timedelta(seconds=amount * factors[unit])
