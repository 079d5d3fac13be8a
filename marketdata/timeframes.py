"""Supported bar timeframes and how each maps to Interactive Brokers' request vocabulary.

Pure Python (no Django): the planner, the IB gateway and the simulator all share this one table
and these duration rules, so what we send and what the simulator accepts cannot drift apart.

IB's durations (the reference in `docs/marketdata.md`, "IB request plans"): a request asks for
the bars of `N S|D|W|M|Y` back from its end. Each bar size has a shortest and a longest
duration IB accepts (its "duration steps" table); outside them IB answers error 321. Seconds
go up to 86,400 and days up to 365 (beyond, IB wants days and years); we send at most 52 weeks
and 12 months. S, D and W are exact (86,400 s a day); M and Y are taken as calendar months and
years back from the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

import pandas as pd

from operations.exceptions import InvalidInput

UNITS = ("S", "D", "W", "M", "Y")
_DAY = 86_400
# What one unit covers at least and at most, in seconds (months 28-31 days, years 365-366).
_SHORTEST = {"S": 1, "D": _DAY, "W": 7 * _DAY, "M": 28 * _DAY, "Y": 365 * _DAY}
_LONGEST = {"S": 1, "D": _DAY, "W": 7 * _DAY, "M": 31 * _DAY, "Y": 366 * _DAY}
# IB refuses more seconds than a day or more days than a year in those units; weeks and months
# past a year are not sent either (years say it).
_MOST = {"S": _DAY, "D": 365, "W": 52, "M": 12}
_NEXT = {"S": ("seconds", "days"), "D": ("days", "years"), "W": ("weeks", "years"),
         "M": ("months", "years")}  # fmt: skip


@dataclass(frozen=True)
class IBDuration:
    """An IB duration string, `amount unit` (`1 W`, `86400 S`)."""

    amount: int
    unit: str

    def __str__(self) -> str:
        return f"{self.amount} {self.unit}"

    @property
    def least_seconds(self) -> int:
        return self.amount * _SHORTEST[self.unit]

    @property
    def most_seconds(self) -> int:
        return self.amount * _LONGEST[self.unit]

    def _offset(self) -> pd.Timedelta | pd.DateOffset:
        if self.unit == "M":
            return pd.DateOffset(months=self.amount)
        if self.unit == "Y":
            return pd.DateOffset(years=self.amount)
        return pd.Timedelta(seconds=self.amount * _SHORTEST[self.unit])

    def start_from(self, end: pd.Timestamp) -> pd.Timestamp:
        """The first instant a request of this duration that ends at `end` covers."""
        return end - self._offset()

    def end_from(self, start: pd.Timestamp) -> pd.Timestamp:
        """The latest end from which this duration still reaches back to `start` (for months
        and years at least: a month after Jan 31 is taken as Feb 28/29)."""
        return start + self._offset()

    def at_most(self, other: IBDuration) -> bool:
        """Whether this duration is certainly no longer than `other` (same unit: by amount;
        else by this one's longest against the other's shortest reading)."""
        if self.unit == other.unit:
            return self.amount <= other.amount
        return self.most_seconds <= other.least_seconds


def parse_ib_duration(text: str) -> IBDuration:
    """`"14 D"` → IBDuration(14, "D"); ValueError for anything IB would not parse or we never
    send (the unit `H`, a missing or zero amount, seconds past a day, days, weeks or months past
    a year)."""
    parts = str(text).strip().split()
    if len(parts) != 2 or not parts[0].isdigit():
        raise ValueError(f"malformed duration {text!r}")
    amount, unit = int(parts[0]), parts[1].upper()
    if unit not in UNITS or amount <= 0:
        raise ValueError(f"unsupported duration unit in {text!r}")
    if unit in _MOST and amount > _MOST[unit]:
        these, bigger = _NEXT[unit]
        raise ValueError(f"durations longer than {_MOST[unit]:,} {these} must be made in {bigger}")
    return IBDuration(amount, unit)


# IB's duration steps (docs/marketdata.md, "IB request plans"): each duration and the smallest
# and largest bar size it allows. A bar size's longest duration is the last step that allows
# it, its shortest the first; past the last step (1 Y) only daily and larger bars are allowed.
_BAR_SECONDS = {"1 secs": 1, "5 secs": 5, "10 secs": 10, "30 secs": 30, "1 min": 60,
                "2 mins": 120, "3 mins": 180, "5 mins": 300, "15 mins": 900, "30 mins": 1800,
                "1 hour": 3600, "3 hours": 10_800, "4 hours": 14_400, "8 hours": 28_800,
                "1 day": _DAY, "1 week": 7 * _DAY, "1 month": 31 * _DAY}  # fmt: skip
IB_DURATION_STEPS = (
    ("60 S", "1 secs", "1 min"),
    ("1800 S", "1 secs", "30 mins"),
    ("3600 S", "5 secs", "1 hour"),
    ("14400 S", "10 secs", "3 hours"),
    ("28800 S", "30 secs", "8 hours"),
    ("1 D", "1 min", "1 day"),
    ("2 D", "2 mins", "1 day"),
    ("1 W", "3 mins", "1 week"),
    ("1 M", "30 mins", "1 month"),
    ("1 Y", "1 day", "1 month"),
)
# Daily bars are allowed by the last step and every longer duration in years; we ask for at
# most five years (about 1,300 bars, well under the "few thousand" a request may return).
DAILY_LONGEST = "5 Y"


@cache
def ib_duration_limits(bar_size: str) -> tuple[IBDuration, IBDuration]:
    """(shortest, longest) duration IB accepts for `bar_size`, from IB_DURATION_STEPS."""
    size = _BAR_SECONDS[bar_size]
    allowing = [
        parse_ib_duration(step)
        for step, smallest, largest in IB_DURATION_STEPS
        if _BAR_SECONDS[smallest] <= size <= _BAR_SECONDS[largest]
    ]
    if not allowing:
        raise ValueError(f"IB allows no duration for {bar_size!r} bars")
    longest = allowing[-1]
    if longest == parse_ib_duration(IB_DURATION_STEPS[-1][0]):
        longest = parse_ib_duration(DAILY_LONGEST)
    return allowing[0], longest


@dataclass(frozen=True)
class Timeframe:
    name: str
    step: timedelta
    ib_bar_size: str

    @property
    def seconds(self) -> int:
        return int(self.step.total_seconds())

    @property
    def is_daily(self) -> bool:
        return self.step >= timedelta(days=1)

    @property
    def ib_shortest(self) -> IBDuration:
        return ib_duration_limits(self.ib_bar_size)[0]

    @property
    def ib_longest(self) -> IBDuration:
        """The longest duration one IB request for these bars may ask for."""
        return ib_duration_limits(self.ib_bar_size)[1]

    @property
    def max_request_span(self) -> timedelta:
        """What one request covers at least (a month as 28 days): for estimates."""
        return timedelta(seconds=self.ib_longest.least_seconds)


TIMEFRAMES: dict[str, Timeframe] = {
    tf.name: tf
    for tf in (
        Timeframe("1m", timedelta(minutes=1), "1 min"),
        Timeframe("5m", timedelta(minutes=5), "5 mins"),
        Timeframe("15m", timedelta(minutes=15), "15 mins"),
        Timeframe("30m", timedelta(minutes=30), "30 mins"),
        Timeframe("1h", timedelta(hours=1), "1 hour"),
        Timeframe("4h", timedelta(hours=4), "4 hours"),
        Timeframe("1d", timedelta(days=1), "1 day"),
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


def ib_duration_problem(duration: IBDuration, bar_size: str) -> str | None:
    """Why IB would refuse `duration` for `bar_size` bars (error 321), or None."""
    shortest, longest = ib_duration_limits(bar_size)
    if not duration.at_most(longest):
        return (
            f"duration {duration} is longer than IB allows for {bar_size} bars (at most {longest})"
        )
    if not shortest.at_most(duration):
        return (
            f"duration {duration} is shorter than IB allows for {bar_size} bars "
            f"(at least {shortest})"
        )
    return None


def ib_duration(start: pd.Timestamp, end: pd.Timestamp, timeframe: Timeframe) -> IBDuration:
    """The shortest duration IB accepts for these bars that, ending at `end`, covers back to
    `start` (rounded *up*: rounding down silently drops bars; the fetched bars are clipped to
    [start, end) afterwards). Ties go to the larger unit (`1 D`, not `86400 S`). ValueError
    when no accepted duration covers the span (it is longer than the bar size's longest)."""
    if end <= start:
        raise ValueError("the request must end after it starts")
    shortest, longest = timeframe.ib_shortest, timeframe.ib_longest
    seconds = (end - start).total_seconds()
    best: tuple[pd.Timedelta, int, IBDuration] | None = None
    for rank, unit in enumerate(UNITS):
        if unit in ("M", "Y"):
            amount = max(1, math.floor(seconds / _LONGEST[unit]))
            while IBDuration(amount, unit).start_from(end) > start:
                amount += 1
        else:
            amount = max(1, math.ceil(seconds / _SHORTEST[unit] - 1e-9))
        if unit == shortest.unit:
            amount = max(amount, shortest.amount)
        candidate = IBDuration(amount, unit)
        if unit in _MOST and amount > _MOST[unit]:
            continue
        if not candidate.at_most(longest) or not shortest.at_most(candidate):
            continue
        if candidate.start_from(end) > start:
            continue
        covered = end - candidate.start_from(end)
        key = (covered, -rank, candidate)
        if best is None or key[:2] < best[:2]:
            best = key
    if best is None:
        raise ValueError(
            f"{start.isoformat()} to {end.isoformat()} is longer than one IB request for "
            f"{timeframe.ib_bar_size} bars may ask for (at most {longest})"
        )
    return best[2]
