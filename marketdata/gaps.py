"""Gap analysis: where a stored series has holes, and which of them the market explains.

A break between two consecutive bars is *expected* when the calendar says the market produced no
bar in between (weekend, session close, holiday) and *unexpected* when it should have produced
some: those are missing data, and the loader's `full` mode fetches them. Pure pandas.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from marketdata.calendar import expected_bar_times
from marketdata.timeframes import Timeframe

MAX_LISTED_GAPS = 50
# Bar slots the calendar is asked for at once (`expected_counts`): bounds its memory.
CHUNK_BARS = 1 << 20


@dataclass(frozen=True)
class Gap:
    start: pd.Timestamp  # first missing instant (previous bar + one step)
    end: pd.Timestamp  # the next bar present
    missing_bars: int  # bars the calendar expected in between

    def as_dict(self) -> dict:
        data = asdict(self)
        data["start"] = self.start.isoformat()
        data["end"] = self.end.isoformat()
        return data


@dataclass(frozen=True)
class GapReport:
    breaks: int
    expected_gaps: int
    unexpected: list[Gap]

    @property
    def missing_bars(self) -> int:
        return sum(g.missing_bars for g in self.unexpected)

    def summary(self) -> dict:
        """The JSON-able summary kept on the BarSeries row (the longest holes listed first)."""
        worst = sorted(self.unexpected, key=lambda g: g.missing_bars, reverse=True)
        return {
            "breaks": self.breaks,
            "expected_gaps": self.expected_gaps,
            "unexpected_gaps": len(self.unexpected),
            "missing_bars": self.missing_bars,
            "largest": [g.as_dict() for g in worst[:MAX_LISTED_GAPS]],
        }


def analyze_gaps(index: pd.DatetimeIndex, timeframe: Timeframe, asset_class: str) -> GapReport:
    """Classify every break between consecutive bars of `index` (sorted, UTC).

    The calendar is asked once per stretch of the analysed range that holds breaks
    (`expected_counts`), never once per break: a year of minute bars has hundreds of them.
    """
    if len(index) < 2:
        return GapReport(0, 0, [])
    step = pd.Timedelta(timeframe.step)
    index = index.as_unit("ns")
    ts = index.asi8
    # Equity daily/intraday grids are not all one step apart; a break is any step > bar size
    # (for daily bars: more than one calendar day).
    breaks = np.flatnonzero(np.diff(ts) > step.value)
    if not len(breaks):
        return GapReport(0, 0, [])
    after = ts[breaks] + step.value
    nxt = ts[breaks + 1]
    missing = expected_counts(asset_class, timeframe, after, nxt)
    hits = np.flatnonzero(missing)
    unexpected = [
        Gap(pd.Timestamp(int(after[i]), tz="UTC"), index[breaks[i] + 1], int(missing[i]))
        for i in hits
    ]
    return GapReport(len(breaks), len(breaks) - len(unexpected), unexpected)


def expected_counts(
    asset_class: str, timeframe: Timeframe, starts: np.ndarray, ends: np.ndarray
) -> np.ndarray:
    """How many bars the calendar expects in each [starts[i], ends[i]) (int64 ns; the
    intervals sorted and disjoint, as the breaks of a sorted index are).

    Vectorised: the expected bar times are computed once per chunk of the range the intervals
    span and each interval's count is two binary searches in them. A chunk holds at most
    `CHUNK_BARS` bar slots, so memory stays bounded whatever the span (a file may put two
    bars centuries apart), and stretches without an interval are skipped.
    """
    counts = np.zeros(len(starts), dtype=np.int64)
    if not len(starts):
        return counts
    step = pd.Timedelta(timeframe.step).value
    span = CHUNK_BARS * step
    last = int(ends[-1])
    i = 0
    done = int(starts[0])
    while i < len(starts):
        lo = max(done, int(starts[i]))
        hi = min(lo + span, last)
        expected = (
            expected_bar_times(
                asset_class, timeframe, pd.Timestamp(lo, tz="UTC"), pd.Timestamp(hi, tz="UTC")
            )
            .as_unit("ns")
            .asi8
        )
        j = int(np.searchsorted(starts, hi, side="left"))
        if len(expected):
            a = np.clip(starts[i:j], lo, hi)
            b = np.clip(ends[i:j], lo, hi)
            counts[i:j] += np.searchsorted(expected, b) - np.searchsorted(expected, a)
        done = hi
        # The next chunk starts at the first interval that does not end inside this one.
        i = int(np.searchsorted(ends, hi, side="right"))
    return counts


def missing_ranges(
    index: pd.DatetimeIndex,
    timeframe: Timeframe,
    asset_class: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Ranges within [start, end) where the calendar expects bars the index does not have.

    Used by `full` mode to fetch only what is missing. Adjacent missing bars form one range.
    """
    expected = expected_bar_times(asset_class, timeframe, start, end)
    if len(expected) == 0:
        return []
    positions = np.flatnonzero(~expected.isin(index))
    if len(positions) == 0:
        return []
    step = pd.Timedelta(timeframe.step)
    # Missing bars adjacent on the calendar grid (even across a weekend) form one range.
    cuts = np.flatnonzero(np.diff(positions) != 1) + 1
    return [(expected[run[0]], expected[run[-1]] + step) for run in np.split(positions, cuts)]
