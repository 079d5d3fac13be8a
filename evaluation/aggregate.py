"""The figures of a walk-forward evaluation over its folds and seeds.

* Per figure over every fold × seed result: mean, median, standard deviation (ddof 1), min,
  max and the count.
* A percentile bootstrap confidence interval of the mean lift (`accuracy_lift`,
  `log_loss_lift`). What is resampled is the **fold**: each fold's figure is first averaged over
  its seeds (seeds share the fold's data, so they are not independent samples), then `resamples`
  means of `folds` folds drawn with replacement give the interval's percentiles. The generator
  is seeded (`seed`), so the same results give the same interval.

No Django, no torch: NumPy on the fold records.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FIGURES = (
    "accuracy",
    "majority_rate",
    "accuracy_lift",
    "log_loss",
    "prior_log_loss",
    "log_loss_lift",
    "macro_f1",
)
CI_FIGURES = ("accuracy_lift", "log_loss_lift")
DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95
DEFAULT_BOOTSTRAP_SEED = 0


def describe(values: list[float] | np.ndarray) -> dict[str, float | int | None]:
    """mean, median, std (ddof 1; 0 for one value), min, max, n."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return {"mean": None, "median": None, "std": None, "min": None, "max": None, "n": 0}
    return {
        "mean": float(v.mean()),
        "median": float(np.median(v)),
        "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
        "min": float(v.min()),
        "max": float(v.max()),
        "n": int(v.size),
    }


def fold_means(records: list[dict[str, Any]], key: str) -> list[float]:
    """Each fold's `key` averaged over its seeds, by fold number."""
    by_fold: dict[int, list[float]] = {}
    for r in records:
        value = r.get(key)
        if isinstance(value, (int, float)) and np.isfinite(value):
            by_fold.setdefault(int(r["fold"]), []).append(float(value))
    return [float(np.mean(by_fold[f])) for f in sorted(by_fold)]


def bootstrap_ci(
    values: list[float] | np.ndarray,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
) -> tuple[float, float] | None:
    """The percentile bootstrap interval of the mean of `values` (None when there are none).

    `resamples` means of `len(values)` values drawn with replacement by
    `numpy.random.default_rng(seed)`; the interval is their (1 - confidence)/2 and
    (1 + confidence)/2 quantiles (linear interpolation)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return None
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, v.size, size=(resamples, v.size))
    means = v[draws].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def aggregate(
    records: list[dict[str, Any]],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
) -> dict[str, Any]:
    """The aggregate of fold × seed results (`records`: fold, seed and the FIGURES)."""
    folds = sorted({int(r["fold"]) for r in records})
    seeds = sorted({int(r["seed"]) for r in records})
    figures = {key: describe([r[key] for r in records if _number(r.get(key))]) for key in FIGURES}
    ci = {}
    for key in CI_FIGURES:
        per_fold = fold_means(records, key)
        interval = bootstrap_ci(per_fold, resamples=resamples, confidence=confidence, seed=seed)
        ci[key] = {
            "mean": float(np.mean(per_fold)) if per_fold else None,
            "low": interval[0] if interval else None,
            "high": interval[1] if interval else None,
            "folds": len(per_fold),
        }
    return {
        "results": len(records),
        "folds": len(folds),
        "seeds": len(seeds),
        "figures": figures,
        "ci": ci,
        "bootstrap": {
            "method": "percentile, folds resampled (each fold averaged over its seeds)",
            "resamples": resamples,
            "confidence": confidence,
            "seed": seed,
        },
    }


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
