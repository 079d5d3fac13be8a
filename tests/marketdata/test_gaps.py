"""Gap analysis on the real EURUSD file: weekends and holidays are expected, holes are not."""

from __future__ import annotations

import pandas as pd
import pytest

from marketdata.csvparse import parse_bars_csv
from marketdata.gaps import analyze_gaps
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
