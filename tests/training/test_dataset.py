"""Time-ordered split and labels: shared boundaries, per-segment labels, no leakage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.training.conftest import small_config_with
from training.dataset import build_dataset, segment_labels, split_boundaries
from training.errors import TrainingDataError


def frame_and_close(n=600, seed=0, start="2020-01-01"):
    rng = np.random.default_rng(seed)
    index = pd.date_range(start, periods=n, freq="h", tz="UTC")
    close = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.004, n))), index=index)
    features = pd.DataFrame({"1h:f": rng.normal(size=n)}, index=index)
    return features, close


@pytest.fixture
def config():
    return small_config_with(labels={"type": "forward_return", "horizon": 5, "threshold": 0.002})


def test_splits_are_in_time_order_and_share_boundaries_across_symbols(config):
    data = {"A": frame_and_close(seed=1), "B": frame_and_close(seed=2, start="2020-01-03")}
    ds = build_dataset(config, data)
    train, val, test = (ds.splits[s] for s in ("train", "validation", "test"))
    assert train.timestamps.max() < pd.Timestamp(ds.boundaries["validation_start"])
    assert pd.Timestamp(ds.boundaries["validation_start"]) <= val.timestamps.min()
    assert val.timestamps.max() < pd.Timestamp(ds.boundaries["test_start"]) <= test.timestamps.min()
    assert set(train.symbols) == set(test.symbols) == {"A", "B"}


def test_labels_never_use_prices_from_a_later_split(config):
    features, close = frame_and_close()
    before = build_dataset(config, {"A": (features, close)})
    val_start = pd.Timestamp(before.boundaries["validation_start"])
    # Make every later price wildly different: if a training label looked across the
    # boundary, some training label (or the set of labelled training rows) would change.
    shocked = close.where(close.index < val_start, close * 1.5)
    after = build_dataset(config, {"A": (features, shocked)})
    np.testing.assert_array_equal(before.splits["train"].y, after.splits["train"].y)
    assert before.splits["train"].timestamps.equals(after.splits["train"].timestamps)


def test_rows_whose_lookahead_crosses_the_boundary_are_dropped(config):
    features, close = frame_and_close()
    ds = build_dataset(config, {"A": (features, close)})
    val_start = pd.Timestamp(ds.boundaries["validation_start"])
    last_train_bar = close.index[close.index < val_start][-1]
    # horizon 5: the last 5 training bars have no label inside the training segment.
    assert ds.splits["train"].timestamps.max() == last_train_bar - pd.Timedelta(hours=5)
    assert ds.unlabelled_rows == {"train": 5, "validation": 5, "test": 5}


def test_each_label_is_computed_from_its_own_segment(config):
    features, close = frame_and_close()
    ds = build_dataset(config, {"A": (features, close)})
    test_start = pd.Timestamp(ds.boundaries["test_start"])
    segment = close[close.index >= test_start].to_numpy()
    expected = segment_labels(segment, config["labels"])
    np.testing.assert_array_equal(ds.splits["test"].y, expected[~np.isnan(expected)].astype(int))


def test_split_boundaries_cut_by_fraction():
    index = pd.date_range("2020-01-01", periods=100, freq="h", tz="UTC")
    val, test = split_boundaries(index, {"train": 0.7, "validation": 0.15, "test": 0.15})
    assert (val, test) == (index[70], index[85])


def test_a_single_class_label_set_is_refused_with_the_counts(config):
    features, close = frame_and_close()
    flat = pd.Series(1.1, index=close.index)  # nothing moves: every label is HOLD
    with pytest.raises(TrainingDataError, match=r"single class \(HOLD: \d+ rows"):
        build_dataset(config, {"A": (features, flat)})


def test_too_few_rows_for_the_split_is_refused(config):
    features, close = frame_and_close(n=60)
    with pytest.raises(TrainingDataError, match="not enough"):
        build_dataset(config, {"A": (features, close)})
