"""Bar rules and merging (hypothesis): overlapping partial loads always yield the union."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketdata.bars import BarValidationError, merge_bars, validate_bars

BASE = pd.Timestamp("2024-01-01", tz="UTC")


def bars_at(hours: list[int], price_offset: float = 0.0) -> pd.DataFrame:
    hours = sorted(set(hours))
    close = np.array([100.0 + h + price_offset for h in hours])
    index = pd.DatetimeIndex([BASE + pd.Timedelta(hours=h) for h in hours], name="timestamp")
    return pd.DataFrame(
        {"open": close, "high": close + 1, "low": close - 1, "close": close, "volume": 1.0},
        index=index,
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 500), st.integers(1, 80)), min_size=1, max_size=8))
def test_any_sequence_of_overlapping_partial_loads_yields_the_sorted_union(loads):
    stored = bars_at([])
    expected: set[int] = set()
    for start, length in loads:
        hours = list(range(start, start + length))
        stored = merge_bars(stored, bars_at(hours))
        expected |= set(hours)
    validate_bars(stored)  # sorted, unique, valid
    assert list(stored.index) == [BASE + pd.Timedelta(hours=h) for h in sorted(expected)]


@settings(max_examples=50, deadline=None)
@given(st.sets(st.integers(0, 200), min_size=1), st.sets(st.integers(0, 200), min_size=1))
def test_merge_keeps_stored_bars_outside_the_new_range_and_prefers_new_values(old, new):
    merged = merge_bars(bars_at(sorted(old)), bars_at(sorted(new), price_offset=0.5))
    for h in old - new:
        assert merged.loc[BASE + pd.Timedelta(hours=h), "close"] == 100.0 + h
    for h in new:
        assert merged.loc[BASE + pd.Timedelta(hours=h), "close"] == 100.5 + h


def test_validation_rejects_duplicates_with_the_timestamp():
    frame = pd.concat([bars_at([1, 2]), bars_at([2])])
    with pytest.raises(BarValidationError, match=r"duplicate timestamps.*2024-01-01T02:00"):
        validate_bars(frame)


def test_validation_rejects_unsorted_bars():
    frame = bars_at([1, 2]).iloc[::-1]
    with pytest.raises(BarValidationError, match="not increasing"):
        validate_bars(frame)


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("high", 50.0, "high below"),
        ("low", 500.0, "low above"),
        ("volume", -1.0, "negative volume"),
        ("close", float("nan"), "non-finite"),
    ],
)
def test_validation_names_the_broken_rule(column, value, rule):
    frame = bars_at([1, 2, 3])
    frame.iloc[1, frame.columns.get_loc(column)] = value
    with pytest.raises(BarValidationError, match=rule):
        validate_bars(frame)


def test_naive_timestamps_are_taken_as_utc_and_normalised_to_ns():
    frame = bars_at([1])
    frame.index = frame.index.tz_localize(None)
    out = validate_bars(frame)
    assert str(out.index.dtype) == "datetime64[ns, UTC]"
    assert out.index.name == "timestamp"
