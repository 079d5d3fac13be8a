"""Gap analysis on the real EURUSD file: weekends and holidays are expected, holes are not; the
calendar is asked once per chunk of the analysed range, and the counts are those per break."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from marketdata import gaps
from marketdata.calendar import expected_bar_times
from marketdata.csvparse import parse_bars_csv
from marketdata.gaps import analyze_gaps
from marketdata.symbols import parse_symbol
from marketdata.synthetic import generate_bars
from marketdata.timeframes import TIMEFRAMES
from tests.marketdata.conftest import EURUSD_CSV
from tests.shared_data import require_shared


@pytest.fixture(scope="module")
def eurusd() -> pd.DataFrame:
    require_shared(EURUSD_CSV)
    return parse_bars_csv(EURUSD_CSV.read_bytes(), timeframe=TIMEFRAMES["1h"])


def test_real_eurusd_weekends_are_expected_gaps_and_the_2016_hole_is_not(eurusd):
    report = analyze_gaps(eurusd.index, TIMEFRAMES["1h"], "forex")
    assert report.breaks == 641  # as the data README counts them
    # The 613 ordinary weekends (DST-aware New York 17:00 close/open) are all expected.
    assert report.expected_gaps >= 613
    holes = {g.start.isoformat()[:13]: g for g in report.unexpected}
    # The holes the data README lists are all found.
    assert holes["2016-12-09T22"].missing_bars > 100  # about 6 days
    for friday in ("2017-03-31T04", "2017-10-06T04", "2018-06-08T04"):
        assert friday in holes
    assert "2015-08-20T19" in holes
    assert "2007-01-08T23" in holes
    # Nothing else but Christmas/New Year closures is flagged.
    others = [k for k in holes if k[5:7] not in {"12", "01"}]
    assert sorted(others) == [
        "2015-08-20T19",
        "2017-03-31T04",
        "2017-10-06T04",
        "2018-06-08T04",
        "2018-10-26T21",
    ]


def test_no_gaps_in_a_complete_series():
    index = pd.date_range("2024-01-02", periods=48, freq="h", tz="UTC")
    report = analyze_gaps(index, TIMEFRAMES["1h"], "forex")
    assert (report.breaks, report.unexpected) == (0, [])


def _per_break(index: pd.DatetimeIndex, tf, asset_class: str) -> list[tuple[str, str, int]]:
    """The definition, one calendar question per break (what analyze_gaps answers at once)."""
    step = pd.Timedelta(tf.step)
    found = []
    for before, after in itertools.pairwise(index):
        if after - before > step:
            missing = len(expected_bar_times(asset_class, tf, before + step, after))
            if missing:
                found.append((str(before + step), str(after), missing))
    return found


@pytest.mark.parametrize("chunk", [1 << 20, 500, 7])
@pytest.mark.parametrize(
    ("symbol", "timeframe"), [("EURUSD", "5m"), ("EURUSD", "1d"), ("AAPL", "1h"), ("AAPL", "15m")]
)
def test_gaps_are_counted_per_break_whatever_the_chunk(monkeypatch, symbol, timeframe, chunk):
    monkeypatch.setattr(gaps, "CHUNK_BARS", chunk)
    tf = TIMEFRAMES[timeframe]
    bars = generate_bars(
        symbol, tf, pd.Timestamp("2023-12-11", tz="UTC"), pd.Timestamp("2024-01-12", tz="UTC")
    )
    holes = np.random.default_rng(5).random(len(bars)) < 0.03
    index = bars.index[~holes]
    report = gaps.analyze_gaps(index, tf, parse_symbol(symbol).asset_class)
    expected = _per_break(index, tf, parse_symbol(symbol).asset_class)
    assert [(str(g.start), str(g.end), g.missing_bars) for g in report.unexpected] == expected
    assert report.breaks == int((np.diff(index.asi8) > pd.Timedelta(tf.step).value).sum())


def test_two_bars_centuries_apart_are_counted_in_bounded_chunks(monkeypatch):
    calls = []
    real = gaps.expected_bar_times

    def counting(asset_class, timeframe, start, end):
        calls.append((start, end))
        return real(asset_class, timeframe, start, end)

    monkeypatch.setattr(gaps, "expected_bar_times", counting)
    tf = TIMEFRAMES["1d"]
    index = pd.DatetimeIndex(["1901-01-02", "2150-01-02"], tz="UTC", name="timestamp")
    report = gaps.analyze_gaps(index, tf, "stock")
    assert report.unexpected[0].missing_bars > 60_000
    assert all((end - start) / pd.Timedelta(days=1) <= gaps.CHUNK_BARS for start, end in calls)
