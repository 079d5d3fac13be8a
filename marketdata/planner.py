"""Which ranges a load fetches (its mode) and how they are cut into IB-sized segments (pure).

Modes: `local` fetches nothing and reports what is stored; `tail` fetches from after
the last stored bar to the end; `backfill` fetches from the start to before the first stored bar;
`full` fetches every range in [start, end) where the calendar expects bars the store lacks
(backfill + tail + unexpected holes). With nothing stored, tail/backfill/full fetch everything.
"""

from __future__ import annotations

from dataclasses import dataclass

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
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """The ranges a load in `mode` needs to fetch within [start, end)."""
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
        return missing_ranges(stored, timeframe, asset_class, start, end)
    # Drop ranges where the market produced nothing (a tail over a weekend fetches nothing).
    return [
        (a, b) for a, b in ranges if b > a and len(expected_bar_times(asset_class, timeframe, a, b))
    ]


def plan_segments(
    ranges: list[tuple[pd.Timestamp, pd.Timestamp]],
    timeframe: Timeframe,
    asset_class: str,
    *,
    max_span: pd.Timedelta | None = None,
) -> list[Segment]:
    """Cut each range into requests no longer than the bar size allows.

    Each segment's IB duration is rounded *up* to cover it (the fetched bars are then clipped to
    the segment), so no bar falls between two segments.
    """
    span = max_span or pd.Timedelta(timeframe.max_request_span)
    segments: list[Segment] = []
    for a, b in ranges:
        cursor = a
        while cursor < b:
            seg_end = min(cursor + span, b)
            expected = len(expected_bar_times(asset_class, timeframe, cursor, seg_end))
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
