"""The fold plan (evaluation.folds): test folds apart, training purged before them and never
inside the embargo after them, sizes by scheme, too-short series refused naming the field."""

from __future__ import annotations

import pytest

from evaluation.folds import MIN_VALIDATION_BARS, plan_folds
from operations.exceptions import InvalidInput

# rows, folds, scheme, test_bars, train_bars, purge, embargo
PLANS = [
    (1000, 2, "expanding", None, None, 0, 0),
    (1000, 5, "expanding", None, None, 12, 12),
    (1000, 3, "expanding", 100, None, 24, 48),
    (1000, 3, "expanding", 100, 300, 6, 0),
    (5000, 20, "expanding", None, None, 200, 500),
    (1000, 3, "rolling", 100, 300, 24, 24),
    (1000, 4, "rolling", None, None, 12, 12),
    (2000, 5, "rolling", 150, 500, 100, 1000),
    (601, 2, "rolling", 20, 100, 0, 0),
]


@pytest.mark.parametrize(("rows", "folds", "scheme", "test", "train", "purge", "embargo"), PLANS)
def test_evaluation_folds_never_overlap_their_embargo(
    rows, folds, scheme, test, train, purge, embargo
):
    plan = plan_folds(
        rows,
        folds=folds,
        scheme=scheme,
        test_bars=test,
        train_bars=train,
        purge_bars=purge,
        embargo_bars=embargo,
    )
    assert [f.number for f in plan] == list(range(1, folds + 1))
    tests = [set(range(*f.test)) for f in plan]
    for i, fold in enumerate(plan):
        trained = set(range(*fold.train)) | set(range(*fold.validation))
        test_lo, test_hi = fold.test
        # Purge: training (and validation) rows end at least `purge` rows before the test fold.
        assert max(trained) < test_lo - purge
        # Embargo: nothing within `embargo` rows after the test fold is trained on.
        assert not trained & set(range(test_hi, test_hi + embargo))
        # No training row is a test row of its own fold.
        assert not trained & tests[i]
        # Test folds never overlap one another, and all lie inside the series.
        for j in range(i + 1, folds):
            assert not tests[i] & tests[j]
        assert min(trained) >= 0
        assert test_hi <= rows
        assert fold.validation[1] - fold.validation[0] >= MIN_VALIDATION_BARS
        assert fold.train[1] == fold.validation[0]  # validation is the training range's tail
    assert plan[-1].test[1] == rows  # the last fold ends at the last row


def test_expanding_training_grows_by_a_test_fold_and_rolling_keeps_its_window():
    expanding = plan_folds(1000, folds=3, scheme="expanding", test_bars=100, purge_bars=10)
    assert [f.test for f in expanding] == [(700, 800), (800, 900), (900, 1000)]
    assert [f.training_rows for f in expanding] == [(0, 690), (0, 790), (0, 890)]
    rolling = plan_folds(
        1000, folds=3, scheme="rolling", test_bars=100, train_bars=300, purge_bars=10
    )
    assert [f.training_rows for f in rolling] == [(390, 690), (490, 790), (590, 890)]
    # The validation rows: the last 15 % of each training range.
    assert rolling[0].validation == (645, 690)


def test_without_sizes_the_rows_are_shared_by_folds_plus_one():
    plan = plan_folds(1210, folds=5, scheme="expanding", purge_bars=10)
    # (1210 - 10) // 6 = 200 training rows first, then 5 test folds of 200.
    assert [f.test for f in plan] == [(210 + 200 * i, 410 + 200 * i) for i in range(5)]
    assert plan[0].training_rows == (0, 200)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"rows": 500, "folds": 5, "test_bars": 100}, "start"),
        ({"rows": 150, "folds": 3}, "start"),
        (
            {"rows": 1000, "folds": 3, "scheme": "rolling", "test_bars": 300, "train_bars": 200},
            "start",
        ),
        ({"rows": 1000, "folds": 3, "scheme": "sideways"}, "scheme"),
        ({"rows": 1000, "folds": 3, "purge_bars": -1}, "purge_bars"),
    ],
)
def test_a_series_too_short_for_the_plan_is_refused_naming_the_field(kwargs, field):
    rows = kwargs.pop("rows")
    with pytest.raises(InvalidInput) as caught:
        plan_folds(rows, **kwargs)
    assert caught.value.field == field
    if field == "start":
        assert f"{rows:,} rows" in caught.value.message
        assert "need" in caught.value.message
