"""The bar store: validated, atomic, merging writes; reads from DATA_DIR at call time that decode
only the row groups they need."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from marketdata import selectors, store
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


# --- conflicts: stored bars are replaced only on purpose --------------------------------------
def _doubled(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out[["open", "high", "low", "close"]] *= 2
    return out


@pytest.fixture
def stored_week(data_dir) -> pd.DataFrame:
    frame = synthetic("2024-01-08", "2024-01-13")
    store.write_bars("EURUSD", "1h", frame, source="synthetic")
    return frame


def test_a_conflicting_write_is_rejected_by_default_naming_how_many_and_the_first(stored_week):
    incoming = _doubled(stored_week.iloc[10:15])
    with pytest.raises(store.BarsConflict) as exc:
        store.write_bars("EURUSD", "1h", incoming, source="csv")
    first = stored_week.index[10].isoformat()
    assert exc.value.status_code == 409
    assert exc.value.message.startswith(
        f"5 incoming bar(s) differ from the bars stored for EURUSD 1h at the same timestamps, "
        f"the first at {first}"
    )
    assert exc.value.details["conflicting_bars"] == 5
    assert exc.value.details["first_conflict"] == first
    pd.testing.assert_frame_equal(store.read_bars("EURUSD", "1h"), stored_week)
    row = BarSeries.objects.get(symbol="EURUSD", timeframe="1h")
    assert (row.source, row.sources) == ("synthetic", ["synthetic"])


def test_keep_adds_only_new_bars_and_counts_the_kept_ones(stored_week):
    later = synthetic("2024-01-15", "2024-01-16")
    incoming = pd.concat([_doubled(stored_week.iloc[10:15]), stored_week.iloc[15:18], later])
    result = store.write_bars("EURUSD", "1h", incoming, source="csv", on_conflict="keep")
    assert (result.bars_added, result.bars_replaced, result.bars_kept, result.bars_unchanged) == (
        len(later), 0, 5, 3
    )  # fmt: skip
    pd.testing.assert_frame_equal(store.read_bars("EURUSD", "1h"), pd.concat([stored_week, later]))


def test_replace_overwrites_and_counts_replaced_and_unchanged(stored_week):
    incoming = pd.concat([_doubled(stored_week.iloc[10:15]), stored_week.iloc[15:18]])
    result = store.write_bars("EURUSD", "1h", incoming, source="csv", on_conflict="replace")
    assert (result.bars_written, result.bars_added, result.bars_replaced) == (8, 0, 5)
    assert (result.bars_kept, result.bars_unchanged, result.total) == (0, 3, len(stored_week))
    stored = store.read_bars("EURUSD", "1h")
    assert stored["close"].iloc[10] == stored_week["close"].iloc[10] * 2


def test_an_unknown_on_conflict_is_invalid_input(stored_week):
    with pytest.raises(InvalidInput) as exc:
        store.write_bars("EURUSD", "1h", stored_week, source="csv", on_conflict="overwrite")
    assert exc.value.field == "on_conflict"


def test_a_write_that_changes_nothing_leaves_source_and_provenance_alone(stored_week):
    before = BarSeries.objects.get(symbol="EURUSD", timeframe="1h")
    result = store.write_bars("EURUSD", "1h", stored_week.iloc[:20], source="csv")
    assert (result.bars_added, result.bars_unchanged, result.warnings) == (0, 20, ())
    row = BarSeries.objects.get(symbol="EURUSD", timeframe="1h")
    assert (row.source, row.sources) == ("synthetic", ["synthetic"])
    assert row.provenance == before.provenance
    assert row.updated_at == before.updated_at


# --- provenance and warnings ------------------------------------------------------------------
def test_provenance_says_where_each_bar_came_from(stored_week):
    replaced = stored_week.index[10:15]
    incoming = _doubled(stored_week.iloc[10:15])
    result = store.write_bars("EURUSD", "1h", incoming, source="csv", on_conflict="replace")
    assert result.warnings == (
        "this series holds synthetic bars; 5 csv bars were merged in (0 added, 5 replaced)",
    )
    row = BarSeries.objects.get(symbol="EURUSD", timeframe="1h")
    assert [(p["source"], p["start"], p["end"], p["bars"]) for p in row.provenance] == [
        ("synthetic", stored_week.index[0].isoformat(), stored_week.index[-1].isoformat(),
         len(stored_week)),
        ("csv", replaced[0].isoformat(), replaced[-1].isoformat(), 5),
    ]  # fmt: skip
    assert all(p["at"] for p in row.provenance)
    where = selectors.bar_provenance
    assert where(symbol="EURUSD", timeframe="1h", at=replaced[2])["source"] == "csv"
    assert where(symbol="EURUSD", timeframe="1h", at=stored_week.index[20])["source"] == "synthetic"
    assert where(symbol="EURUSD", timeframe="1h", at="2023-01-01") is None
    assert row.source == "csv"
    assert row.sources == ["csv", "synthetic"]


def test_consecutive_writes_of_one_source_stay_one_range(data_dir):
    for start, end in (("2024-01-08", "2024-01-09"), ("2024-01-09", "2024-01-10"),
                       ("2024-01-05", "2024-01-08")):  # fmt: skip
        store.write_bars("EURUSD", "1h", synthetic(start, end), source="ib")
    row = BarSeries.objects.get(symbol="EURUSD", timeframe="1h")
    whole = synthetic("2024-01-05", "2024-01-10")
    assert [(p["source"], p["start"], p["end"], p["bars"]) for p in row.provenance] == [
        ("ib", whole.index[0].isoformat(), whole.index[-1].isoformat(), len(whole))
    ]


def test_a_write_filling_many_holes_is_one_scattered_range(stored_week):
    later = synthetic("2024-01-15", "2024-01-20")
    store.write_bars("EURUSD", "1h", later.iloc[::2], source="synthetic")
    store.write_bars("EURUSD", "1h", later, source="csv", on_conflict="keep")
    newest = BarSeries.objects.get(symbol="EURUSD", timeframe="1h").provenance[-1]
    assert newest["source"] == "csv"
    assert newest["scattered"] is True
    assert newest["bars"] == len(later) - len(later.iloc[::2])


def test_provenance_is_bounded(stored_week, monkeypatch):
    monkeypatch.setattr(store, "MAX_PROVENANCE", 3)
    for i in range(5):
        bar = synthetic("2024-01-15", "2024-01-20").iloc[[i * 3]]
        store.write_bars("EURUSD", "1h", bar, source="csv" if i % 2 else "ib")
    provenance = BarSeries.objects.get(symbol="EURUSD", timeframe="1h").provenance
    assert len(provenance) == 3
    assert provenance[-1]["source"] == "ib"


# --- reads decode only the row groups they need -----------------------------------------------
@pytest.fixture
def grouped(data_dir, monkeypatch) -> pd.DataFrame:
    """A month of 1h bars in row groups of 50 (the store's are 4,096: the same rules, smaller)."""
    monkeypatch.setattr(store, "ROW_GROUP_BARS", 50)
    frame = synthetic("2024-01-01", "2024-02-01")
    store.write_bars("EURUSD", "1h", frame, source="synthetic")
    return frame


def _decoded(monkeypatch) -> list[int]:
    """Spy: the rows of every row group the store decodes."""
    rows: list[int] = []
    real = pq.ParquetFile.read_row_group

    def spy(self, i, *args, **kwargs):
        table = real(self, i, *args, **kwargs)
        rows.append(table.num_rows)
        return table

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    return rows


def test_files_are_written_in_row_groups_aligned_to_the_newest_bar(grouped):
    footer = pq.ParquetFile(store.series_path("EURUSD", "1h")).metadata
    sizes = [footer.row_group(g).num_rows for g in range(footer.num_row_groups)]
    assert sum(sizes) == len(grouped)
    assert sizes[1:] == [50] * (len(sizes) - 1)  # the remainder is the oldest group
    assert 0 < sizes[0] <= 50


def test_the_newest_window_decodes_one_row_group_and_counts_the_rest_from_the_footer(
    grouped, monkeypatch
):
    decoded = _decoded(monkeypatch)
    window = selectors.bars_window(symbol="EURUSD", timeframe="1h", limit=40)
    assert decoded == [50]
    pd.testing.assert_frame_equal(window.frame, grouped.iloc[-40:])
    assert window.total_in_range == len(grouped)
    assert window.truncated
    assert window.next_end == grouped.index[-40]


def test_windows_and_ranges_read_exactly_what_slicing_the_whole_series_gives(grouped):
    rng = np.random.default_rng(11)
    stamps = grouped.index
    for _ in range(60):
        a, b = sorted(int(x) for x in rng.integers(0, len(stamps), 2))
        jitter = pd.Timedelta(minutes=int(rng.integers(-90, 90)))
        start = None if a < 5 else stamps[a] + jitter
        end = None if b > len(stamps) - 5 else stamps[b] - jitter
        inside = grouped
        if start is not None:
            inside = inside[inside.index >= start]
        if end is not None:
            inside = inside[inside.index < end]
        pd.testing.assert_frame_equal(store.read_bars("EURUSD", "1h", start, end), inside)
        limit = int(rng.integers(1, 200))
        frame, total = store.read_window("EURUSD", "1h", start, end, limit=limit)
        assert total == len(inside)
        pd.testing.assert_frame_equal(frame, inside.iloc[max(len(inside) - limit, 0) :])


def test_paging_backwards_from_next_end_walks_the_whole_series_once(grouped):
    seen = []
    end = None
    while True:
        window = selectors.bars_window(symbol="EURUSD", timeframe="1h", end=end, limit=70)
        seen.append(window.frame)
        if not window.truncated:
            break
        end = window.next_end
    pd.testing.assert_frame_equal(pd.concat(seen[::-1]), grouped)


def test_a_rewritten_file_is_never_read_with_the_old_footer(grouped):
    assert len(store.read_bars("EURUSD", "1h")) == len(grouped)  # its footer is now kept
    more = synthetic("2024-02-01", "2024-02-03")
    store.write_bars("EURUSD", "1h", more, source="synthetic")
    pd.testing.assert_frame_equal(store.read_bars("EURUSD", "1h"), pd.concat([grouped, more]))
    window, total = store.read_window("EURUSD", "1h", limit=3)
    assert total == len(grouped) + len(more)
    pd.testing.assert_frame_equal(window, more.iloc[-3:])


def test_a_file_written_before_row_groups_reads_the_same(data_dir):
    frame = synthetic("2024-01-01", "2024-01-10")
    store.write_bars("EURUSD", "1h", frame, source="synthetic")
    path = store.series_path("EURUSD", "1h")
    # As earlier versions wrote it: one row group, statistics on every column.
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=True), path, compression="zstd")
    pd.testing.assert_frame_equal(store.read_bars("EURUSD", "1h"), frame)
    window, total = store.read_window("EURUSD", "1h", "2024-01-03", "2024-01-05", limit=5)
    assert total == 48
    pd.testing.assert_frame_equal(window, frame.loc["2024-01-04 19:00":"2024-01-04 23:00"])
