"""Which ranges a load fetches (its mode) and how they are cut into IB-sized segments (pure).

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
from marketdata.timeframes import Timeframe, ib_duration_for

MODES = ("local", "tail", "backfill", "full")


@dataclass(frozen=True)
class Segment:
    index: int
    start: pd.Timestamp
    end: pd.Timestamp
    expected_bars: int
    ib_duration: str

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
    max_span: pd.Timedelta | None = None,
    head: pd.Timestamp | None = None,
) -> list[Segment]:
    """Cut each range into requests no longer than the bar size allows.

    Each segment's IB duration is rounded *up* to cover it (the fetched bars are then clipped to
    the segment), so no bar falls between two segments. A segment holding `head` (the source's
    first bar) is kept and counts that bar, whatever the calendar expects there.
    """
    span = max_span or pd.Timedelta(timeframe.max_request_span)
    segments: list[Segment] = []
    for a, b in ranges:
        cursor = a
        while cursor < b:
            seg_end = min(cursor + span, b)
            times = expected_bar_times(asset_class, timeframe, cursor, seg_end)
            expected = len(times) + int(_holds(head, cursor, seg_end) and head not in times)
            if expected:
                segments.append(
                    Segment(
                        len(segments),
                        cursor,
                        seg_end,
                        expected,
                        ib_duration_for((seg_end - cursor).to_pytimedelta(), timeframe),
                    )
                )
            cursor = seg_end
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
