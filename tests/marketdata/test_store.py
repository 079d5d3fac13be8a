"""The bar store: validated, atomic, merging writes; reads from DATA_DIR at call time."""

from __future__ import annotations

import pandas as pd
import pytest

from marketdata import store
from marketdata.models import BarSeries
from marketdata.synthetic import generate_bars
from marketdata.timeframes import TIMEFRAMES
from operations.exceptions import InvalidInput, NotFound

pytestmark = pytest.mark.django_db

H1 = TIMEFRAMES["1h"]


def synthetic(start: str, end: str) -> pd.DataFrame:
    return generate_bars("EURUSD", H1, pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC"))


def test_read_of_a_missing_series_raises_not_found(data_dir):
    with pytest.raises(store.SeriesNotFound) as exc:
        store.read_bars("EURUSD", "1h")
    assert isinstance(exc.value, NotFound)


def test_written_bars_read_back_identically_with_the_contract_shape(data_dir):
    frame = synthetic("2024-01-01", "2024-02-01")
    result = store.write_bars("EURUSD", "1h", frame, source="synthetic")
    assert result.bars_added == len(frame)
    back = store.read_bars("EURUSD", "1h")
    pd.testing.assert_frame_equal(back, frame)
    assert str(back.index.dtype) == "datetime64[ns, UTC]"
    assert back.index.name == "timestamp"
    assert list(back.columns) == ["open", "high", "low", "close", "volume"]
    assert all(str(t) == "float64" for t in back.dtypes)


def test_ranged_read_is_start_inclusive_end_exclusive(data_dir):
    store.write_bars("EURUSD", "1h", synthetic("2024-01-01", "2024-02-01"), source="synthetic")
    part = store.read_bars("EURUSD", "1h", "2024-01-10T00:00:00Z", "2024-01-11")
    assert part.index[0] == pd.Timestamp("2024-01-10", tz="UTC")
    assert part.index[-1] == pd.Timestamp("2024-01-10 23:00", tz="UTC")


def test_partial_write_never_drops_stored_bars_outside_its_range(data_dir):
    store.write_bars("EURUSD", "1h", synthetic("2024-01-01", "2024-03-01"), source="synthetic")
    before = store.read_bars("EURUSD", "1h")
    store.write_bars("EURUSD", "1h", synthetic("2024-01-15", "2024-01-20"), source="synthetic")
    pd.testing.assert_frame_equal(store.read_bars("EURUSD", "1h"), before)


def test_invalid_bars_are_refused_and_the_stored_file_is_untouched(data_dir):
    store.write_bars("EURUSD", "1h", synthetic("2024-01-01", "2024-01-10"), source="synthetic")
    path = store.series_path("EURUSD", "1h")
    original = path.read_bytes()
    bad = synthetic("2024-01-10", "2024-01-12")
    bad.iloc[3, bad.columns.get_loc("high")] = 0.5
    with pytest.raises(InvalidInput) as exc:
        store.write_bars("EURUSD", "1h", bad, source="synthetic")
    assert exc.value.details == {"bars": [exc.value.message]}
    assert "high below" in exc.value.message
    assert path.read_bytes() == original
    assert not list(path.parent.glob("*.tmp"))


def test_write_updates_the_series_row_with_coverage_and_gap_summary(data_dir):
    frame = synthetic("2024-01-01", "2024-02-01")
    frame = frame.drop(frame.index[100:110])  # a hole on a weekday
    store.write_bars("EURUSD", "1h", frame, source="synthetic")
    row = BarSeries.objects.get(symbol="EURUSD", timeframe="1h")
    assert row.row_count == len(frame)
    assert row.first_timestamp == frame.index[0].to_pydatetime()
    assert row.last_timestamp == frame.index[-1].to_pydatetime()
    assert row.gap_summary["unexpected_gaps"] == 1
    assert row.gap_summary["missing_bars"] == 10
    assert row.gap_summary["expected_gaps"] >= 4  # the weekends of January
    assert row.file_path == "bars/EURUSD_1h.parquet"
    assert row.file_size == store.series_path("EURUSD", "1h").stat().st_size


def test_data_dir_is_read_at_call_time(settings, tmp_path, data_dir):
    store.write_bars("EURUSD", "1h", synthetic("2024-01-01", "2024-01-05"), source="synthetic")
    settings.KTRDR = {**settings.KTRDR, "DATA_DIR": tmp_path / "elsewhere"}
    with pytest.raises(store.SeriesNotFound):
        store.read_bars("EURUSD", "1h")


def test_read_validates_symbol_and_timeframe(data_dir):
    with pytest.raises(InvalidInput) as exc:
        store.read_bars("EURUSD", "7h")
    assert exc.value.field == "timeframe"
