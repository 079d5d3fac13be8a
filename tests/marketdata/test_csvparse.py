"""CSV reading: common layouts are recognised, anything else is refused saying what and where."""

from __future__ import annotations

import gzip
import zlib

import pandas as pd
import pytest

from marketdata import csvparse
from marketdata.csvparse import CsvFormatError, gunzip_bounded, parse_bars_csv
from marketdata.timeframes import TIMEFRAMES
from tests.shared_data import EURUSD_1H_CSV, require_shared

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
        (
            "timestamp,open,high,low,close,volume\n2024-01-02T10:00:00Z,1,2,0.5,1.5,\n",
            "line 2: volume value '' is not a number",
        ),
        (
            "timestamp,open,high,low,close\n2024-01-02T10:00:00Z,1,2,0.5,1.5\n"
            "2024-01-02T11:00:00Z,NA,2,0.5,1.5\n",
            "line 3: open value 'NA' is not a number",
        ),
        (
            "timestamp,open,high,low,close\n2024-01-02T10:00:00Z,1,2,0.5,1.5\n,1,2,0.5,1.5\n",
            "line 3: cannot read timestamp ''",
        ),
    ],
)
def test_bad_files_are_refused_saying_what_and_where(text, message):
    with pytest.raises(CsvFormatError) as exc:
        parse_bars_csv(text, timeframe=H1)
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("first", "stamp", "shown"),
    [
        ("2024-01-01", "1500-01-06", "1500-01-06"),
        ("2024-01-01", "2263-01-06T00:00:00Z", "2263-01-06"),
        ("1704067200000", "99999999999999", "5138-11-16"),  # epoch milliseconds
        ("20240101", "15000106", "1500-01-06"),  # YYYYMMDD before 1900, never epoch seconds
    ],
    ids=["iso-1500", "iso-2263", "epoch-ms-5138", "yyyymmdd-1500"],
)
def test_timestamps_outside_1900_to_2200_are_refused_with_the_line(first, stamp, shown):
    text = f"timestamp,open,high,low,close\n{first},1,2,0.5,1.5\n{stamp},1,2,0.5,1.5\n"
    with pytest.raises(CsvFormatError) as exc:
        parse_bars_csv(text, timeframe=TIMEFRAMES["1d"])
    message = str(exc.value)
    assert message.startswith(f"line 3: timestamp '{stamp}' is {shown}")
    assert "outside the years 1900-2199" in message


def test_eight_digit_timestamps_are_dates_never_epoch_seconds():
    text = "timestamp,open,high,low,close\n15000106,1,2,0.5,1.5\n15000107,1,2,0.5,1.5\n"
    with pytest.raises(CsvFormatError, match=r"line 2: timestamp '15000106' is 1500-01-06"):
        parse_bars_csv(text)
    with pytest.raises(CsvFormatError, match="line 2: cannot read timestamp '99999999'"):
        parse_bars_csv("timestamp,open,high,low,close\n99999999,1,2,0.5,1.5\n")
    frame = parse_bars_csv("timestamp,open,high,low,close\n20240102,1,2,0.5,1.5\n")
    assert frame.index[0].isoformat() == "2024-01-02T00:00:00+00:00"


def test_two_bars_closer_than_the_timeframe_are_refused():
    text = (
        "timestamp,open,high,low,close\n2024-01-02T10:00:00Z,1,2,0.5,1.5\n"
        "2024-01-02T10:05:00Z,1,2,0.5,1.5\n"
    )
    with pytest.raises(CsvFormatError, match="line 3: bars only 5 minutes apart"):
        parse_bars_csv(text, timeframe=H1)


def test_two_bars_far_wider_apart_than_the_timeframe_are_refused():
    text = "timestamp,open,high,low,close\n2024-01-02,1,2,0.5,1.5\n2024-01-03,1,2,0.5,1.5\n"
    with pytest.raises(CsvFormatError, match="typically 1 day apart but the timeframe is 1m"):
        parse_bars_csv(text, timeframe=TIMEFRAMES["1m"])


def test_negative_epochs_off_the_grid_are_refused_naming_the_first():
    # -7201 s is 1969-12-31T21:59:59Z: one hour apart, but not on the hour.
    text = "time,open,high,low,close\n-7201,1,2,0.5,1.5\n-3601,1,2,0.5,1.5\n"
    with pytest.raises(CsvFormatError) as exc:
        parse_bars_csv(text, timeframe=H1, asset_class="forex")
    assert str(exc.value).startswith(
        "line 2: timestamp 1969-12-31T21:59:59+00:00 is off the 1h grid"
    )
    assert "2 such line(s)" in str(exc.value)


def test_the_grid_follows_the_market_equity_hours_open_on_the_half_hour():
    # 14:30Z is 09:30 New York, an equity session's first 1h bar; FX 1h bars are on the hour.
    text = (
        "timestamp,open,high,low,close\n2024-01-02T14:30:00Z,1,2,0.5,1.5\n"
        "2024-01-02T15:30:00Z,1,2,0.5,1.5\n"
    )
    assert len(parse_bars_csv(text, timeframe=H1, asset_class="stock")) == 2
    with pytest.raises(CsvFormatError, match="line 2: timestamp 2024-01-02T14:30:00"):
        parse_bars_csv(text, timeframe=H1, asset_class="forex")
    off = "timestamp,open,high,low,close\n2024-01-02T14:31:00Z,1,2,0.5,1.5\n"
    with pytest.raises(CsvFormatError, match="off the 1d grid"):
        parse_bars_csv(off, timeframe=TIMEFRAMES["1d"], asset_class="stock")


def test_gzip_is_decompressed_within_the_cap():
    text = b"timestamp,open,high,low,close\n2024-01-02T10:00:00Z,1,2,0.5,1.5\n"
    packed = gzip.compress(text[:20]) + gzip.compress(text[20:])  # two members, like cat a b
    assert gunzip_bounded(packed, max_bytes=len(text)) == text
    with pytest.raises(CsvFormatError, match=f"more than {len(text) - 1:,} bytes"):
        gunzip_bounded(packed, max_bytes=len(text) - 1)
    with pytest.raises(CsvFormatError, match="cut short"):
        gunzip_bounded(packed[:-12], max_bytes=1000)
    with pytest.raises(CsvFormatError, match="not a readable gzip file"):
        gunzip_bounded(packed[:10] + b"\xff" * 20, max_bytes=1000)


def test_a_gzip_bomb_is_refused_after_at_most_the_cap_plus_one_chunk(monkeypatch):
    bomb = gzip.compress(b"0" * (64 * 1024 * 1024), compresslevel=9)  # 64 MiB in ~64 KiB
    seen: list[int] = []
    real = zlib.decompressobj

    class Spy:
        def __init__(self, *args):
            self._inner = real(*args)

        def decompress(self, data, max_length=0):
            assert 0 < max_length <= 1 << 20
            out = self._inner.decompress(data, max_length)
            seen.append(len(out))
            return out

        def __getattr__(self, name):
            return getattr(self._inner, name)

    monkeypatch.setattr(zlib, "decompressobj", Spy)
    with pytest.raises(CsvFormatError, match="more than 1,000,000 bytes"):
        gunzip_bounded(bomb, max_bytes=1_000_000)
    assert sum(seen) == 1_000_001


@pytest.mark.parametrize(
    "text",
    [
        "timestamp,open,high,low,close,volume\n2024-01-02T10:00:00Z,1,2,0.5,1.5,10\n"
        "2024-01-02T11:00:00+00:00,1.5,2,1,1.2,5\n2024-01-02 12:00:00,1.25,2,1,1.2,7\n",
        "time,o,h,l,c\n1704189600000,1,2,0.5,1.5\n1704193200000,1.5,2,1,1.2\n",
        "Date,Time,Open,High,Low,Close\n20240102,10:00,1,2,0.5,1.5\n20240102,11:00,1.5,2,1,1.2\n",
    ],
    ids=["mixed-zones", "epoch-ms", "yyyymmdd-date+time"],
)
def test_the_fast_reading_gives_what_the_strict_one_does(monkeypatch, text):
    fast = parse_bars_csv(text, timeframe=H1)
    monkeypatch.setattr(csvparse, "_fast_columns", lambda raw, layout: None)
    pd.testing.assert_frame_equal(fast, parse_bars_csv(text, timeframe=H1))


def test_the_real_file_reads_the_same_fast_and_strict(monkeypatch):
    data = require_shared(EURUSD_1H_CSV).read_bytes()
    fast = parse_bars_csv(data, timeframe=H1, asset_class="forex")
    assert len(fast) == 74_439
    monkeypatch.setattr(csvparse, "_fast_columns", lambda raw, layout: None)
    monkeypatch.setattr(csvparse, "_iso_with_zone", lambda text: None)
    pd.testing.assert_frame_equal(fast, parse_bars_csv(data, timeframe=H1, asset_class="forex"))
