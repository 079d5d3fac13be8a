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
    """Classify every break between consecutive bars of `index` (sorted, UTC)."""
    if len(index) < 2:
        return GapReport(0, 0, [])
    step = pd.Timedelta(timeframe.step)
    ts = index.asi8
    # Equity daily/intraday grids are not all one step apart; a break is any step > bar size
    # (for daily bars: more than one calendar day).
    breaks = np.flatnonzero(np.diff(ts) > step.value)
    unexpected: list[Gap] = []
    for i in breaks:
        after = index[i] + step
        nxt = index[i + 1]
        missing = len(expected_bar_times(asset_class, timeframe, after, nxt))
        if missing:
            unexpected.append(Gap(after, nxt, missing))
    return GapReport(len(breaks), len(breaks) - len(unexpected), unexpected)


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
