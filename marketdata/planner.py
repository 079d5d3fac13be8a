"""Which ranges a load fetches (its mode) and how they are cut into IB-sized segments (pure).

Segments are as few as IB allows: each is one request of at most the bar size's longest
duration (`Timeframe.ib_longest`: 1 D for 1 min bars, 1 W for 5 and 15 mins, 1 M for 30 mins
to 4 hours, 5 Y for days), starting at the first bar the calendar expects that no earlier
segment covers. Closed time (nights, weekends, holidays) is not requested, so a segment never
starts in it; that greedy cover is the fewest requests of that length that reach every expected
bar.

Modes: `local` fetches nothing and reports what is stored; `tail` fetches from after
the last stored bar to the end; `backfill` fetches from the start to before the first stored bar;
`full` fetches every range in [start, end) where the calendar expects bars the store lacks
(backfill + tail + unexpected holes). With nothing stored, tail/backfill/full fetch everything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from marketdata.calendar import expected_bar_times
from marketdata.gaps import missing_ranges
from marketdata.timeframes import Timeframe, ib_duration

MODES = ("local", "tail", "backfill", "full")


@dataclass(frozen=True)
class Segment:
    index: int
    start: pd.Timestamp
    end: pd.Timestamp
    expected_bars: int
    ib_duration: str
    # Only closed time (no bar the calendar expects) lies between the previous segment and
    # this one: a run of failed segments joined this way is one hole in the store.
    adjacent: bool = False

    def as_dict(self) -> dict:
        return {
            "index": self.index,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "expected_bars": self.expected_bars,
            "ib_duration": self.ib_duration,
        }


def fetch_ranges(
    *,
    mode: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    stored: pd.DatetimeIndex,
    timeframe: Timeframe,
    asset_class: str,
    head: pd.Timestamp | None = None,
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """The ranges a load in `mode` needs to fetch within [start, end).

    `head` is the source's first bar (its head timestamp). That bar exists by definition, even
    where the calendar expects none (the real EURUSD data opens 2007-01-01 21:00Z, on a holiday,
    an hour before the calendar's session). In `full` mode a missing head bar is fetched: the
    range that would start after it, with nothing stored in between, is widened to start at it,
    else a one-bar range is added, so the first bar is never skipped.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    if mode == "local" or end <= start:
        return []
    step = pd.Timedelta(timeframe.step)
    if len(stored) == 0:
        ranges = [(start, end)]
    elif mode == "tail":
        ranges = [(max(start, stored[-1] + step), end)]
    elif mode == "backfill":
        ranges = [(start, min(end, stored[0]))]
    else:
        ranges = missing_ranges(stored, timeframe, asset_class, start, end)
    # Drop ranges where the market produced nothing (a tail over a weekend fetches nothing).
    ranges = [
        (a, b)
        for a, b in ranges
        if b > a and (_holds(head, a, b) or len(expected_bar_times(asset_class, timeframe, a, b)))
    ]
    if mode != "full":
        return ranges  # tail and backfill ask for one side of the store; their ranges hold it
    return _with_head(ranges, head=head, start=start, end=end, stored=stored, step=step)


def _holds(stamp: pd.Timestamp | None, a: pd.Timestamp, b: pd.Timestamp) -> bool:
    return stamp is not None and a <= stamp < b


def _with_head(
    ranges: list[tuple[pd.Timestamp, pd.Timestamp]],
    *,
    head: pd.Timestamp | None,
    start: pd.Timestamp,
    end: pd.Timestamp,
    stored: pd.DatetimeIndex,
    step: pd.Timedelta,
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    if head is None or not start <= head < end or head in stored:
        return ranges
    if any(_holds(head, a, b) for a, b in ranges):
        return ranges
    first_after = next((i for i, (a, _b) in enumerate(ranges) if a > head), None)
    if first_after is not None:
        a, b = ranges[first_after]
        if not ((stored >= head) & (stored < a)).any():
            return [*ranges[:first_after], (head, b), *ranges[first_after + 1 :]]
    return sorted([*ranges, (head, min(head + step, end))])


def plan_segments(
    ranges: list[tuple[pd.Timestamp, pd.Timestamp]],
    timeframe: Timeframe,
    asset_class: str,
    *,
    head: pd.Timestamp | None = None,
) -> list[Segment]:
    """Cut each range into as few IB requests as the bar size allows.

    The calendar is asked once per range. Each segment starts at the first expected bar not
    yet covered, reaches as far as one request of the longest duration does (never past the
    range), and ends just after the last bar it holds; its IB duration is the shortest one
    IB accepts that covers it, rounded *up* (the fetched bars are then clipped to the
    segment), so no expected bar falls between two segments. The source's first bar (`head`)
    counts as expected, whatever the calendar says there.
    """
    longest = timeframe.ib_longest
    step = pd.Timedelta(timeframe.step)
    segments: list[Segment] = []
    for a, b in ranges:
        times = expected_bar_times(asset_class, timeframe, a, b).as_unit("ns")
        if _holds(head, a, b) and head not in times:
            times = times.insert(int(times.searchsorted(head)), head).as_unit("ns")
        stamps = times.asi8
        i = 0
        while i < len(stamps):
            start = times[i]
            reach = min(longest.end_from(start), b)
            j = int(np.searchsorted(stamps, reach.value, side="left"))
            end = min(times[j - 1] + step, reach)
            segments.append(
                Segment(
                    len(segments),
                    start,
                    end,
                    j - i,
                    str(ib_duration(start, end, timeframe)),
                    adjacent=i > 0,
                )
            )
            i = j
    return segments


def coverage_runs(index: pd.DatetimeIndex, timeframe: Timeframe) -> list[list[str]]:
    """A stored index as runs of bars one step apart, `[[first, last], ...]` (ISO): what a
    backend tells an agent it already holds, so the agent plans against it (compact: a run ends
    only where the series breaks — a weekend, a session close, a hole)."""
    if len(index) == 0:
        return []
    step = pd.Timedelta(timeframe.step).value
    values = index.asi8
    cuts = np.flatnonzero(np.diff(values) != step) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts - 1, [len(values) - 1]])
    return [[index[a].isoformat(), index[b].isoformat()] for a, b in zip(starts, ends, strict=True)]


def index_from_runs(runs: object, timeframe: Timeframe) -> pd.DatetimeIndex:
    """The index `coverage_runs` describes; ValueError for anything else (it comes over the
    wire, so nothing in it is trusted: ISO stamps, ordered, each run forward)."""
    if not isinstance(runs, list):
        raise ValueError("stored_ranges must be a list of [first, last] pairs")
    step = pd.Timedelta(timeframe.step)
    parts = []
    previous = None
    for run in runs:
        if not (isinstance(run, list | tuple) and len(run) == 2):
            raise ValueError("stored_ranges must be a list of [first, last] pairs")
        first, last = (_utc(value) for value in run)
        if last < first or (previous is not None and first <= previous):
            raise ValueError("stored_ranges must be ordered and not overlap")
        parts.append(pd.date_range(first, last, freq=step))
        previous = last
    if not parts:
        return pd.DatetimeIndex([], tz="UTC", name="timestamp").as_unit("ns")
    index = parts[0].append(parts[1:]) if len(parts) > 1 else parts[0]
    return pd.DatetimeIndex(index, name="timestamp").as_unit("ns")


def _utc(value: object) -> pd.Timestamp:
    if not isinstance(value, str):
        raise ValueError("stored_ranges holds ISO timestamps")
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
