"""What a model's figures mean: baselines, lifts, per-class figures and warnings, from NumPy.

Computed once at the end of a training run (`TrainingExecutor._evaluate`) into the result
summary and the model's metrics; pages, the API and the `train` command only show them.

* Majority rate of a split: the share of its most frequent class — the accuracy of always
  predicting that class. `accuracy_lift` = accuracy - majority rate.
* Prior log-loss of a split: the cross-entropy of predicting, for every row, the *training*
  split's class frequencies (the one prior a model could have learnt without looking at its
  inputs), evaluated on that split's labels. `log_loss_lift` = prior log-loss - the model's
  unweighted log-loss. A class absent from the training split gets probability 1e-12 there.
* `log_loss` is the plain (unweighted) mean cross-entropy; `loss` stays the training
  criterion's value (class-weighted when `class_weights: balanced`), named as such.

No Django, no torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from training.labels import NUM_CLASSES, SIGNAL_NAMES

EPS = 1e-12
# Defaults of the warnings' thresholds (settings KTRDR_TRAINING_MIN_CLASS_SHARE, …).
MIN_CLASS_SHARE = 0.05
MIN_CLASS_SAMPLES = 30
COLLAPSE_SHARE = 0.95
DRIFT_Z = 3.0


def class_counts(y: np.ndarray) -> np.ndarray:
    return np.bincount(np.asarray(y, dtype=np.int64), minlength=NUM_CLASSES)[:NUM_CLASSES]


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return matrix


def log_loss(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Mean -ln p(true class), probabilities clipped at 1e-12."""
    y = np.asarray(y_true, np.int64)
    if y.size == 0:
        return float("nan")
    p = np.clip(np.asarray(probs, float)[np.arange(y.size), y], EPS, 1.0)
    return float(-np.log(p).mean())


def prior_log_loss(y_true: np.ndarray, train_counts: np.ndarray) -> float:
    """The cross-entropy of predicting the training class frequencies for every row."""
    prior = np.asarray(train_counts, float) / max(float(np.sum(train_counts)), 1.0)
    probs = np.broadcast_to(prior, (np.asarray(y_true).size, NUM_CLASSES))
    return log_loss(y_true, probs)


def per_class(matrix: np.ndarray) -> dict[str, dict[str, float | int]]:
    tp = np.diag(matrix).astype(float)
    predicted = matrix.sum(axis=0).astype(float)
    actual = matrix.sum(axis=1).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return {
        name: {
            "precision": round(float(precision[i]), 4),
            "recall": round(float(recall[i]), 4),
            "f1": round(float(f1[i]), 4),
            "support": int(actual[i]),
            "predicted": int(predicted[i]),
        }
        for i, name in enumerate(SIGNAL_NAMES)
    }


def split_report(
    y_true: np.ndarray,
    probs: np.ndarray,
    train_counts: np.ndarray,
    predicted: np.ndarray | None = None,
) -> dict[str, Any]:
    """Every figure of one split: accuracy and log-loss against their baselines, macro F1,
    per-class precision/recall/F1, the confusion matrix and the class balance.

    `predicted` defaults to the argmax of `probs` (the executor passes the logits' argmax)."""
    y = np.asarray(y_true, np.int64)
    if predicted is None:
        predicted = np.asarray(probs).argmax(axis=1) if y.size else np.empty(0, np.int64)
    matrix = confusion_matrix(y, predicted)
    counts = class_counts(y)
    n = int(y.size)
    accuracy = float(np.trace(matrix) / n) if n else 0.0
    majority = float(counts.max() / n) if n else 0.0
    model_loss = log_loss(y, probs)
    prior_loss = prior_log_loss(y, train_counts)
    classes = per_class(matrix)
    # Macro F1 over the classes present in the split (truth) or predicted there.
    seen = [i for i in range(NUM_CLASSES) if counts[i] or matrix[:, i].sum()]
    macro_f1 = float(np.mean([classes[SIGNAL_NAMES[i]]["f1"] for i in seen])) if seen else 0.0
    return {
        "samples": n,
        "accuracy": round(accuracy, 6),
        "majority_class": SIGNAL_NAMES[int(counts.argmax())] if n else None,
        "majority_rate": round(majority, 6),
        "accuracy_lift": round(accuracy - majority, 6),
        "log_loss": round(model_loss, 6),
        "prior_log_loss": round(prior_loss, 6),
        "log_loss_lift": round(prior_loss - model_loss, 6),
        "macro_f1": round(macro_f1, 4),
        "per_class": classes,
        "confusion_matrix": {"labels": list(SIGNAL_NAMES), "matrix": matrix.tolist()},
        "class_balance": {name: int(counts[i]) for i, name in enumerate(SIGNAL_NAMES)},
        "predicted_balance": {name: int(matrix[:, i].sum()) for i, name in enumerate(SIGNAL_NAMES)},
    }


def feature_drift(
    train_x: np.ndarray, test_x: np.ndarray, names: list[str], kinds: dict[str, str]
) -> dict[str, float]:
    """Per indicator feature: (test mean - train mean) / train std, in training-std units.

    Fuzzy memberships are bounded to [0, 1] and skipped; a constant training column (std 0) has
    no scale and is skipped too."""
    out: dict[str, float] = {}
    if len(train_x) == 0 or len(test_x) == 0:
        return out
    means, stds = train_x.mean(axis=0), train_x.std(axis=0)
    test_means = test_x.mean(axis=0)
    for j, name in enumerate(names):
        if kinds.get(name.partition(":")[2]) == "fuzzy" or not stds[j] > 1e-12:
            continue
        out[name] = round(float((test_means[j] - means[j]) / stds[j]), 3)
    return out


def _warning(code: str, message: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {"code": code, "message": message, "detail": detail}


def training_warnings(
    reports: dict[str, dict[str, Any]],
    drift: dict[str, float],
    *,
    price_levels: list[str] | None = None,
    min_class_share: float = MIN_CLASS_SHARE,
    min_class_samples: int = MIN_CLASS_SAMPLES,
    collapse_share: float = COLLAPSE_SHARE,
    drift_z: float = DRIFT_Z,
) -> list[dict[str, Any]]:
    """What the figures of a run should not hide, as {code, message, detail}.

    * `minority_class`: a class under `min_class_share` of the training split's labels;
    * `few_samples`: a class with fewer than `min_class_samples` rows in some split;
    * `collapsed_predictions`: more than `collapse_share` of a split's predictions are one class;
    * `input_drift`: test inputs whose mean lies more than `drift_z` training deviations away
      from the training mean;
    * `price_level_input`: model inputs that are raw price levels (`price_levels`).
    """
    out: list[dict[str, Any]] = []
    train = reports.get("train") or {}
    balance = train.get("class_balance") or {}
    total = sum(balance.values())
    if total:
        shares = {name: n / total for name, n in balance.items()}
        low = {name: round(s, 4) for name, s in shares.items() if s < min_class_share}
        if low:
            listed = ", ".join(f"{k} {v:.1%}" for k, v in low.items())
            out.append(
                _warning(
                    "minority_class",
                    f"the training labels are degenerate: {listed} of {total} rows (under "
                    f"{min_class_share:.0%}); accuracy mostly measures the other classes",
                    {"shares": low, "threshold": min_class_share, "counts": balance},
                )
            )
    few = {
        split: {k: v for k, v in (r.get("class_balance") or {}).items() if v < min_class_samples}
        for split, r in reports.items()
    }
    few = {split: v for split, v in few.items() if v}
    if few:
        listed = "; ".join(
            f"{split}: " + ", ".join(f"{k} {v}" for k, v in classes.items())
            for split, classes in few.items()
        )
        out.append(
            _warning(
                "few_samples",
                f"too few samples per class (under {min_class_samples}): {listed}",
                {"splits": few, "threshold": min_class_samples},
            )
        )
    for split, r in reports.items():
        predicted = r.get("predicted_balance") or {}
        n = sum(predicted.values())
        if not n:
            continue
        name, count = max(predicted.items(), key=lambda kv: kv[1])
        if count / n > collapse_share:
            out.append(
                _warning(
                    "collapsed_predictions",
                    f"the model predicts {name} for {count / n:.1%} of the {split} split: its "
                    "predictions have collapsed to one class",
                    {
                        "split": split,
                        "class": name,
                        "share": round(count / n, 4),
                        "threshold": collapse_share,
                    },
                )
            )
    if price_levels:
        out.append(
            _warning(
                "price_level_input",
                f"model input(s) {', '.join(price_levels)} are raw price levels: they leave the "
                "training range when the price moves; use a price-relative output such as "
                "`.distance` (close / average - 1)",
                {"inputs": list(price_levels)},
            )
        )
    drifted = {k: v for k, v in drift.items() if abs(v) > drift_z}
    if drifted:
        listed = ", ".join(f"{k} ({v:+.1f})" for k, v in drifted.items())
        out.append(
            _warning(
                "input_drift",
                f"test inputs lie outside the training range (mean over {drift_z:g} training "
                f"standard deviations away): {listed}",
                {"features": drifted, "threshold": drift_z},
            )
        )
    return out
