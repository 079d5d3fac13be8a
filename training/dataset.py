"""Time-ordered train/validation/test split and labels, with no leakage across boundaries.

* Boundaries are timestamps cut from the union of every symbol's (post-warm-up) base timestamps,
  so all symbols share them: no symbol's test period overlaps another's training period.
* Labels are computed per symbol *per segment*, from that segment's closes only; a bar whose
  look-ahead would run past its segment's end has no label and is dropped. So no training label
  ever uses a validation or test price.
* Warm-up rows were dropped before (`training.features.symbol_features`).

No Django, no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from training.errors import TrainingDataError
from training.labels import NUM_CLASSES, SIGNAL_NAMES, forward_return_labels, zigzag_labels

SPLITS = ("train", "validation", "test")
# Fewest labelled rows a split may have: below this the metrics are noise.
MIN_ROWS = {"train": 50, "validation": 10, "test": 10}


@dataclass
class SplitData:
    x: np.ndarray
    y: np.ndarray
    symbols: list[str]
    timestamps: pd.DatetimeIndex

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.y, minlength=NUM_CLASSES)
        return {name: int(counts[i]) for i, name in enumerate(SIGNAL_NAMES)}


@dataclass
class Dataset:
    feature_names: list[str]
    splits: dict[str, SplitData]
    boundaries: dict[str, str]
    unlabelled_rows: dict[str, int] = field(default_factory=dict)


def timestamp_union(indexes: list[pd.DatetimeIndex]) -> pd.DatetimeIndex:
    """The sorted distinct timestamps of all `indexes` (index operations: no Python Timestamps)."""
    first, *rest = indexes
    return first.append(rest).unique().sort_values() if rest else first.unique().sort_values()


def split_boundaries(
    timestamps: pd.DatetimeIndex, fractions: dict[str, float]
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(validation start, test start) cutting the sorted unique `timestamps` by fraction."""
    n = len(timestamps)
    val_at = round(n * fractions["train"])
    test_at = round(n * (fractions["train"] + fractions["validation"]))
    val_at = min(max(val_at, 1), n - 2)
    test_at = min(max(test_at, val_at + 1), n - 1)
    return timestamps[val_at], timestamps[test_at]


def segment_labels(close: np.ndarray, labels: dict[str, Any]) -> np.ndarray:
    if labels["type"] == "zigzag":
        return zigzag_labels(close, threshold=labels["threshold"])
    return forward_return_labels(close, horizon=labels["horizon"], threshold=labels["threshold"])


def build_dataset(
    config: dict[str, Any],
    per_symbol: dict[str, tuple[pd.DataFrame, pd.Series]],
) -> Dataset:
    """Split every symbol's features on shared time boundaries and label each segment."""
    union = timestamp_union([frame.index for frame, _ in per_symbol.values()])
    total_needed = sum(MIN_ROWS.values())
    if len(union) < total_needed:
        raise TrainingDataError(
            f"not enough bars after the indicators' warm-up: {len(union)} rows remain, the split "
            f"needs at least {total_needed} ({', '.join(f'{k} {v}' for k, v in MIN_ROWS.items())})"
        )
    val_start, test_start = split_boundaries(union, config["split"])

    def segment_of(index: pd.DatetimeIndex) -> np.ndarray:
        return np.where(index < val_start, 0, np.where(index < test_start, 1, 2))

    return _assemble(
        config,
        per_symbol,
        segment_of,
        {"validation_start": val_start.isoformat(), "test_start": test_start.isoformat()},
    )


def dataset_for_ranges(
    config: dict[str, Any],
    per_symbol: dict[str, tuple[pd.DataFrame, pd.Series]],
    ranges: dict[str, tuple[pd.Timestamp, pd.Timestamp | None]],
) -> Dataset:
    """A dataset of given time ranges: `ranges[split] = (first, end)`, `first` included and
    `end` excluded (None: to the last row); rows in no range are left out.

    The walk-forward evaluation's folds (`evaluation.folds`) are built this way. Each range is
    labelled on its own closes, as a split is, so no label looks past its range's end; the same
    minimum rows and the two-class check apply."""
    bounds = [(SPLITS.index(split), lo, hi) for split, (lo, hi) in ranges.items()]

    def segment_of(index: pd.DatetimeIndex) -> np.ndarray:
        out = np.full(len(index), -1)
        for s_i, lo, hi in bounds:
            inside = index >= lo if hi is None else (index >= lo) & (index < hi)
            out[inside] = s_i
        return out

    return _assemble(
        config,
        per_symbol,
        segment_of,
        {f"{split}_start": lo.isoformat() for split, (lo, _hi) in ranges.items()},
    )


def _assemble(
    config: dict[str, Any],
    per_symbol: dict[str, tuple[pd.DataFrame, pd.Series]],
    segment_of: Callable[[pd.DatetimeIndex], np.ndarray],
    boundaries: dict[str, str],
) -> Dataset:
    """Label each symbol's rows per segment (`segment_of(index)`: 0 train, 1 validation, 2 test,
    -1 none) from that segment's closes only, and check the splits."""
    names = list(next(iter(per_symbol.values()))[0].columns)
    parts: dict[str, list[tuple[np.ndarray, np.ndarray, list[str], pd.DatetimeIndex]]] = {
        s: [] for s in SPLITS
    }
    unlabelled = dict.fromkeys(SPLITS, 0)
    for symbol, (frame, close) in per_symbol.items():
        index = frame.index
        segment = segment_of(index)
        for s_i, split in enumerate(SPLITS):
            mask = segment == s_i
            if not mask.any():
                continue
            y = segment_labels(close.to_numpy()[mask], config["labels"])
            keep = ~np.isnan(y)
            unlabelled[split] += int((~keep).sum())
            x = frame.to_numpy()[mask][keep]
            parts[split].append(
                (x, y[keep].astype(np.int64), [symbol] * int(keep.sum()), index[mask][keep])
            )
    splits: dict[str, SplitData] = {}
    for split in SPLITS:
        chunks = parts[split]
        if chunks:
            splits[split] = SplitData(
                x=np.concatenate([c[0] for c in chunks]),
                y=np.concatenate([c[1] for c in chunks]),
                symbols=[s for c in chunks for s in c[2]],
                timestamps=chunks[0][3].append([c[3] for c in chunks[1:]]).rename(None),
            )
        else:
            splits[split] = SplitData(
                np.empty((0, len(names))), np.empty(0, np.int64), [], pd.DatetimeIndex([])
            )
    for split, minimum in MIN_ROWS.items():
        if len(splits[split]) < minimum:
            raise TrainingDataError(
                f"not enough labelled rows in the {split} split: {len(splits[split])} (need "
                f"{minimum}); {unlabelled[split]} rows had no label because their look-ahead ran "
                "past the split's end. Load a longer history, shorten labels.horizon or lower "
                "labels.threshold"
            )
    present = [name for name, n in splits["train"].class_counts().items() if n > 0]
    if len(present) < 2:
        counts = splits["train"].class_counts()
        raise TrainingDataError(
            f"labels: the training split has a single class ({present[0]}: {counts[present[0]]} "
            f"rows; {config['labels']['type']} threshold {config['labels']['threshold']:g}); "
            "a model cannot learn from one class — lower labels.threshold or use more data"
        )
    return Dataset(
        feature_names=names,
        splits=splits,
        boundaries=boundaries,
        unlabelled_rows=unlabelled,
    )
