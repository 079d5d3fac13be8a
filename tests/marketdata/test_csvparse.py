"""CSV reading: common layouts are recognised, anything else is refused saying what and where."""

from __future__ import annotations

import pytest

from marketdata.csvparse import CsvFormatError, parse_bars_csv
from marketdata.timeframes import TIMEFRAMES

H1 = TIMEFRAMES["1h"]


@pytest.mark.parametrize(
    "text",
    [
        "timestamp,open,high,low,close,volume\n2024-01-02T10:00:00Z,1,2,0.5,1.5,10\n"
        "2024-01-02T11:00:00Z,1.5,2,1,1.2,5\n",
        "Date,Time,Open,High,Low,Close,Volume\n2024.01.02,10:00,1,2,0.5,1.5,10\n"
        "2024.01.02,11:00,1.5,2,1,1.2,5\n",
        "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\n2024.01.02\t10:00:00\t1\t2\t0.5"
        "\t1.5\t10\n2024.01.02\t11:00:00\t1.5\t2\t1\t1.2\t5\n",
        "time;o;h;l;c;v\n1704189600;1;2;0.5;1.5;10\n1704193200;1.5;2;1;1.2;5\n",
        "20240102 10:00,1,2,0.5,1.5,10\n20240102 11:00,1.5,2,1,1.2,5\n",
        "Gmt time,Open,High,Low,Close,Volume\n02.01.2024 10:00:00.000,1,2,0.5,1.5,10\n"
        "02.01.2024 11:00:00.000,1.5,2,1,1.2,5\n",
        "datetime,open,high,low,close,volume\n2024-01-02 11:00:00+01:00,1,2,0.5,1.5,10\n"
        "2024-01-02 12:00:00+01:00,1.5,2,1,1.2,5\n",
    ],
    ids=[
        "iso-z",
        "date+time",
        "metatrader-tabs",
        "epoch-semicolon",
        "no-header",
        "dukascopy",
        "offset",
    ],
)
def test_common_layouts_give_the_same_bars(text):
    frame = parse_bars_csv(text, timeframe=H1)
    assert [t.isoformat() for t in frame.index] == [
        "2024-01-02T10:00:00+00:00",
        "2024-01-02T11:00:00+00:00",
    ]
    assert frame["close"].tolist() == [1.5, 1.2]
    assert frame["volume"].tolist() == [10.0, 5.0]


def test_missing_volume_column_means_zero_volume():
    frame = parse_bars_csv("timestamp,open,high,low,close\n2024-01-02T10:00:00Z,1,2,0.5,1.5\n")
    assert frame["volume"].tolist() == [0.0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("foo,bar\n1,2\n", "line 1: no timestamp column"),
        ("timestamp,open,high,low\n2024-01-02T10:00:00Z,1,2,0.5\n", "no close column"),
        (
            "timestamp,open,high,low,close\n2024-01-02T10:00:00Z,1,2,0.5,1.5\nbanana,1,2,0.5,1.5\n",
            "line 3: cannot read timestamp 'banana'",
        ),
        (
            "timestamp,open,high,low,close\n2024-01-02T10:00:00Z,1,x,0.5,1.5\n",
            "line 2: high value 'x' is not a number",
        ),
        (
            "timestamp,open,high,low,close\n2024-01-02T10:00:00Z,1,2,0.5,1.5\n"
            "2024-01-02T10:00:00Z,1,2,0.5,1.5\n",
            "line 3: duplicate timestamp",
        ),
        (
            "timestamp,open,high,low,close\n2024-01-02T11:00:00Z,1,2,0.5,1.5\n"
            "2024-01-02T10:00:00Z,1,2,0.5,1.5\n",
            "line 3: timestamp earlier",
        ),
        (
            "timestamp,open,high,low,close\n2024-01-02T10:00:00Z,1,2,1.2,1.5\n",
            "line 2: low is above min(open, close)",
        ),
        (
            "timestamp,open,high,low,close,volume\n2024-01-02T10:00:00Z,1,2,0.5,1.5,-3\n",
            "line 2: volume is negative",
        ),
        (
            "timestamp,open,high,low,close\n2024-01-02T10:00:00Z,1,2,0.5,1.5\n"
            "2024-01-02T10:05:00Z,1,2,0.5,1.5\n2024-01-02T10:10:00Z,1,2,0.5,1.5\n",
            "5 minutes apart, but the timeframe is 1h",
        ),
        (b"\xff\xfe\x00t\x00i", "not UTF-8"),
    ],
)
def test_bad_files_are_refused_saying_what_and_where(text, message):
    with pytest.raises(CsvFormatError) as exc:
        parse_bars_csv(text, timeframe=H1)
    assert message in str(exc.value)
