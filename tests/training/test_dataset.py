"""Time-ordered split and labels: shared boundaries, per-segment labels, no leakage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.training.conftest import small_config_with
from training.dataset import (
    SPLITS,
    build_dataset,
    dataset_for_ranges,
    segment_labels,
    split_boundaries,
    timestamp_union,
)
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


# --- index operations against a straightforward reference ---------------------------------------
def reference_dataset(config, per_symbol):
    """build_dataset written the plain way: a Python set of Timestamps, row-by-row segments."""
    union = pd.DatetimeIndex(sorted(set().union(*(set(f.index) for f, _ in per_symbol.values()))))
    val_start, test_start = split_boundaries(union, config["split"])
    out = {s: {"x": [], "y": [], "symbols": [], "timestamps": []} for s in SPLITS}
    for symbol, (frame, close) in per_symbol.items():
        for split, rows in (
            ("train", frame.index < val_start),
            ("validation", (frame.index >= val_start) & (frame.index < test_start)),
            ("test", frame.index >= test_start),
        ):
            labels = segment_labels(close[rows].to_numpy(), config["labels"])
            for ts, x, label in zip(frame.index[rows], frame.to_numpy()[rows], labels, strict=True):
                if not np.isnan(label):
                    out[split]["x"].append(x)
                    out[split]["y"].append(int(label))
                    out[split]["symbols"].append(symbol)
                    out[split]["timestamps"].append(ts)
    return (val_start, test_start), out


@pytest.mark.parametrize(
    "labels",
    [
        {"type": "forward_return", "horizon": 5, "threshold": 0.002},
        {"type": "zigzag", "threshold": 0.01},
    ],
)
def test_splits_and_labels_equal_the_reference_on_overlapping_symbols(labels):
    config = small_config_with(labels=labels)
    a_features, a_close = frame_and_close(n=700, seed=1)
    b_features, b_close = frame_and_close(n=500, seed=2, start="2020-01-09")
    # B has holes (a weekend-like gap and scattered missing bars): the union is not either index.
    keep = np.ones(500, dtype=bool)
    keep[100:148] = False
    keep[::37] = False
    data = {"A": (a_features, a_close), "B": (b_features[keep], b_close[keep])}
    ds = build_dataset(config, data)
    (val_start, test_start), expected = reference_dataset(config, data)
    assert ds.boundaries == {
        "validation_start": val_start.isoformat(),
        "test_start": test_start.isoformat(),
    }
    for split in SPLITS:
        part, want = ds.splits[split], expected[split]
        np.testing.assert_array_equal(part.x, np.array(want["x"]))
        np.testing.assert_array_equal(part.y, np.array(want["y"], dtype=np.int64))
        assert part.symbols == want["symbols"]
        assert part.timestamps.equals(pd.DatetimeIndex(want["timestamps"]))
        assert part.timestamps.tz is not None


def test_timestamp_union_is_the_sorted_set_of_every_index():
    a = pd.date_range("2020-01-01", periods=50, freq="h", tz="UTC")
    b = pd.date_range("2020-01-02", periods=50, freq="2h", tz="UTC")
    c = a[::3]
    expected = pd.DatetimeIndex(sorted(set(a) | set(b) | set(c)))
    assert timestamp_union([a, b, c]).equals(expected)
    assert timestamp_union([b]).equals(b)


def test_ranges_keep_only_their_rows_and_label_each_on_its_own_closes(config):
    """`dataset_for_ranges` (the evaluation's folds): rows outside every range are left out,
    and no label looks past its range's end (the last `horizon` rows of each range)."""
    features, close = frame_and_close(n=600)
    index = features.index
    ranges = {
        "train": (index[50], index[300]),
        "validation": (index[300], index[380]),
        "test": (index[420], index[520]),
    }
    ds = dataset_for_ranges(config, {"A": (features, close)}, ranges)
    horizon = config["labels"]["horizon"]
    for split, (lo, hi) in ranges.items():
        part = ds.splits[split]
        assert part.timestamps.min() == lo
        # The last labelled row is `horizon` rows before the range's end: its label's close
        # is the range's last one.
        assert part.timestamps.max() == index[index.get_loc(hi) - 1 - horizon]
        own = segment_labels(
            close[(close.index >= lo) & (close.index < hi)].to_numpy(), config["labels"]
        )
        assert np.array_equal(part.y, own[~np.isnan(own)].astype(np.int64))
    assert ds.unlabelled_rows == dict.fromkeys(SPLITS, horizon)
    assert ds.boundaries["test_start"] == index[420].isoformat()
    assert len(ds.splits["train"]) + len(ds.splits["validation"]) + len(ds.splits["test"]) == (
        250 + 80 + 100 - 3 * horizon
    )


def test_an_open_ended_range_runs_to_the_last_row(config):
    features, close = frame_and_close(n=400)
    index = features.index
    ranges = {"train": (index[0], index[200]), "validation": (index[200], index[300])}
    ds = dataset_for_ranges(
        config, {"A": (features, close)}, {**ranges, "test": (index[320], None)}
    )
    assert ds.splits["test"].timestamps.max() == index[-1 - config["labels"]["horizon"]]
