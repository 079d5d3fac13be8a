"""The walk-forward fold plan: which rows each fold trains, validates and tests on.

A pure function of the row count and the request (`plan_folds`), in positions of the series'
rows after the indicators' warm-up. The test folds are consecutive, the last one ends at the
series' last row, and every fold trains on rows before its test fold only:

* **expanding**: fold *i* trains on every row from the first up to its purge gap;
* **rolling**: fold *i* trains on the `train_bars` rows before its purge gap.

Guarantees (held by `tests/evaluation/test_folds.py`):

* Test folds never overlap, and each has `test_bars` rows.
* **Purge**: a fold's training and validation rows end at least `purge_bars` rows before its
  test fold starts. Labels are computed per range on that range's closes only
  (`training.dataset.dataset_for_ranges`), so no training label looks into the test fold; the
  gap also keeps features that overlap in time (indicator windows, the label horizon) apart.
* **Embargo**: no row within `embargo_bars` after a fold's test fold is used to train that
  fold's model. Walk-forward never trains after its test fold, so this holds by construction;
  the plan checks it anyway, so a scheme that ever trained on both sides could not break it.
* The validation rows (early stopping and the best epoch) are the last share of the training
  range, before the purge gap: the model is chosen without seeing the test fold.

No Django, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from operations.exceptions import InvalidInput

SCHEMES = ("expanding", "rolling")
# Fewest rows a range may have (the training dataset then needs 50/10/10 labelled rows of them).
MIN_TRAIN_BARS = 100
MIN_TEST_BARS = 20
MIN_VALIDATION_BARS = 20
VALIDATION_FRACTION = 0.15


@dataclass(frozen=True)
class Fold:
    """One fold in row positions; every range is [first, end)."""

    number: int  # 1-based
    train: tuple[int, int]
    validation: tuple[int, int]
    test: tuple[int, int]

    @property
    def training_rows(self) -> tuple[int, int]:
        """Every row the fold's model sees: its train and validation ranges."""
        return self.train[0], self.validation[1]

    def as_dict(self) -> dict[str, Any]:
        return {
            "fold": self.number,
            "train": list(self.train),
            "validation": list(self.validation),
            "test": list(self.test),
        }


def plan_folds(
    rows: int,
    *,
    folds: int,
    scheme: str = "expanding",
    test_bars: int | None = None,
    train_bars: int | None = None,
    purge_bars: int = 0,
    embargo_bars: int = 0,
    validation_fraction: float = VALIDATION_FRACTION,
) -> list[Fold]:
    """The folds over `rows` rows; `InvalidInput` naming the field when they do not fit.

    `test_bars` None: the rows left after the (first) training range and the purge, shared
    equally by the folds. `train_bars`: the rolling window, or the least rows of the first
    expanding training range; None: one share of the rows, as a test fold gets when both are
    None (the rows split in `folds + 1` shares)."""
    if scheme not in SCHEMES:
        raise InvalidInput(f"scheme must be one of {', '.join(SCHEMES)}", field="scheme")
    if purge_bars < 0 or embargo_bars < 0:
        field = "purge_bars" if purge_bars < 0 else "embargo_bars"
        raise InvalidInput(f"{field} must be at least 0", field=field)
    usable = rows - purge_bars
    if train_bars is None:
        train_bars = usable // (folds + 1) if test_bars is None else usable - folds * test_bars
        train_bars = max(train_bars, MIN_TRAIN_BARS) if scheme == "expanding" else train_bars
    if test_bars is None:
        test_bars = (usable - train_bars) // folds
    needed = train_bars + purge_bars + folds * max(test_bars, MIN_TEST_BARS)
    if train_bars < MIN_TRAIN_BARS or test_bars < MIN_TEST_BARS or rows < needed:
        raise InvalidInput(
            f"the range holds {rows:,} rows after the indicators' warm-up; {folds} folds of "
            f"{max(test_bars, MIN_TEST_BARS):,} test rows, a purge of {purge_bars} and "
            f"{max(train_bars, MIN_TRAIN_BARS):,} training rows need {max(needed, 0):,}: widen "
            "the range or ask for fewer or shorter folds",
            field="start",
        )
    first_test = rows - folds * test_bars
    plan = []
    for i in range(folds):
        test_lo = first_test + i * test_bars
        train_end = test_lo - purge_bars
        train_lo = 0 if scheme == "expanding" else train_end - train_bars
        span = train_end - train_lo
        val_rows = max(MIN_VALIDATION_BARS, round(span * validation_fraction))
        val_lo = train_end - val_rows
        fold = Fold(
            number=i + 1,
            train=(train_lo, val_lo),
            validation=(val_lo, train_end),
            test=(test_lo, test_lo + test_bars),
        )
        _check(fold, rows, purge_bars, embargo_bars)
        plan.append(fold)
    return plan


def _check(fold: Fold, rows: int, purge_bars: int, embargo_bars: int) -> None:
    """The plan's invariants, asserted on every fold it returns (a bug, never bad input)."""
    lo, hi = fold.training_rows
    test_lo, test_hi = fold.test
    guarded = (test_lo - purge_bars, test_hi + embargo_bars)
    assert 0 <= lo < fold.train[1] <= fold.validation[0] < hi <= test_lo < test_hi <= rows
    assert hi <= guarded[0] or lo >= guarded[1], f"fold {fold.number} trains in its guard"
