"""The aggregate (evaluation.aggregate): exact on hand-made inputs; the bootstrap resamples
folds, is reproducible by its seed and brackets the mean."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.aggregate import FIGURES, aggregate, bootstrap_ci, describe, fold_means


def record(fold: int, seed: int, lift: float, ll_lift: float = 0.0) -> dict:
    figures = dict.fromkeys(FIGURES, 0.5)
    return {**figures, "fold": fold, "seed": seed, "accuracy_lift": lift, "log_loss_lift": ll_lift}


def test_describe_is_exact_on_a_hand_made_list():
    assert describe([1.0, 2.0, 3.0, 10.0]) == {
        "mean": 4.0,
        "median": 2.5,
        "std": pytest.approx(np.sqrt((9 + 4 + 1 + 36) / 3)),
        "min": 1.0,
        "max": 10.0,
        "n": 4,
    }
    assert describe([7.0])["std"] == 0.0
    assert describe([])["mean"] is None


def test_fold_means_average_the_seeds_of_each_fold():
    records = [record(2, 1, 0.3), record(1, 1, 0.1), record(1, 2, 0.2), record(2, 2, 0.5)]
    assert fold_means(records, "accuracy_lift") == pytest.approx([0.15, 0.4])


def test_the_bootstrap_of_equal_values_is_that_value_and_of_two_is_its_percentiles():
    assert bootstrap_ci([0.02, 0.02, 0.02]) == (0.02, 0.02)
    # Means of 2 draws from {0, 1}: 0, 0.5 or 1; with 2000 resamples the 2.5 % and 97.5 %
    # quantiles are the extremes, as a direct computation with the same generator says.
    low, high = bootstrap_ci([0.0, 1.0], resamples=2000, seed=7)
    draws = np.random.default_rng(7).integers(0, 2, size=(2000, 2))
    expected = np.quantile(np.array([0.0, 1.0])[draws].mean(axis=1), [0.025, 0.975])
    assert (low, high) == (expected[0], expected[1]) == (0.0, 1.0)


def test_the_bootstrap_is_reproducible_by_its_seed_and_brackets_the_mean():
    values = [0.01, -0.02, 0.03, 0.0, 0.015]
    a = bootstrap_ci(values, resamples=500, seed=3)
    assert a == bootstrap_ci(values, resamples=500, seed=3)
    assert a != bootstrap_ci(values, resamples=500, seed=4)
    assert a[0] < np.mean(values) < a[1]
    wider = bootstrap_ci(values, resamples=500, seed=3, confidence=0.99)
    assert wider[0] <= a[0]
    assert wider[1] >= a[1]


def test_aggregate_counts_folds_and_seeds_and_resamples_folds_not_runs():
    records = [record(f, s, 0.01 * f, -0.01 * f) for f in (1, 2, 3) for s in (10, 11)]
    agg = aggregate(records, resamples=300, seed=1)
    assert (agg["results"], agg["folds"], agg["seeds"]) == (6, 3, 2)
    assert agg["figures"]["accuracy_lift"]["mean"] == pytest.approx(0.02)
    assert agg["figures"]["accuracy_lift"]["n"] == 6
    lift = agg["ci"]["accuracy_lift"]
    assert lift["folds"] == 3
    assert (lift["low"], lift["high"]) == bootstrap_ci([0.01, 0.02, 0.03], resamples=300, seed=1)
    assert agg["ci"]["log_loss_lift"]["mean"] == pytest.approx(-0.02)
    assert agg["bootstrap"] == {
        "method": "percentile, folds resampled (each fold averaged over its seeds)",
        "resamples": 300,
        "confidence": 0.95,
        "seed": 1,
    }
