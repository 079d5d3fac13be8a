"""Baselines, lifts, per-class figures and warnings (training.evaluation), by hand and through real
trainings: exact on a set counted by hand, near zero on a random walk, warnings on degenerate runs
only, and `weights_sha256` equal for equal weights."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch

from tests.training.conftest import SMALL_STRATEGY, make_loader
from training import evaluation
from training.artifacts import load_artifact, sha256_file, weights_sha256
from training.executor import TrainingExecutor
from training.labels import NUM_CLASSES
from training.strategy import validate_strategy

# Ten rows counted by hand (BUY 0, HOLD 1, SELL 2):
#   true BUY  ×4: predicted BUY, BUY, HOLD, SELL
#   true HOLD ×5: predicted HOLD, HOLD, HOLD, BUY, SELL
#   true SELL ×1: predicted SELL
TRUE = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 2])
PRED = np.array([0, 0, 1, 2, 1, 1, 1, 0, 2, 2])


def one_hot(pred: np.ndarray, p: float = 0.8) -> np.ndarray:
    probs = np.full((pred.size, NUM_CLASSES), (1 - p) / 2)
    probs[np.arange(pred.size), pred] = p
    return probs


def test_a_hand_counted_set_gives_exact_baselines_and_per_class_figures():
    train_counts = np.array([2, 6, 2])  # the prior: BUY 0.2, HOLD 0.6, SELL 0.2
    r = evaluation.split_report(TRUE, one_hot(PRED), train_counts)
    assert r["confusion_matrix"]["matrix"] == [[2, 1, 1], [1, 3, 1], [0, 0, 1]]
    assert r["class_balance"] == {"BUY": 4, "HOLD": 5, "SELL": 1}
    assert r["predicted_balance"] == {"BUY": 3, "HOLD": 4, "SELL": 3}
    assert r["accuracy"] == pytest.approx(0.6)
    assert r["majority_class"] == "HOLD"
    assert r["majority_rate"] == pytest.approx(0.5)
    assert r["accuracy_lift"] == pytest.approx(0.1)
    # BUY: 2 of 3 predicted, 2 of 4 true; HOLD 3/4, 3/5; SELL 1/3, 1/1.
    assert r["per_class"]["BUY"]["precision"] == pytest.approx(0.6667)
    assert r["per_class"]["BUY"]["recall"] == pytest.approx(0.5)
    assert r["per_class"]["HOLD"]["precision"] == pytest.approx(0.75)
    assert r["per_class"]["HOLD"]["recall"] == pytest.approx(0.6)
    assert r["per_class"]["SELL"]["precision"] == pytest.approx(0.3333)
    assert r["per_class"]["SELL"]["recall"] == pytest.approx(1.0)
    f1 = [2 * p * q / (p + q) for p, q in ((2 / 3, 0.5), (0.75, 0.6), (1 / 3, 1.0))]
    assert r["macro_f1"] == pytest.approx(np.mean(f1), abs=1e-4)
    # Prior log-loss: -(4 ln 0.2 + 5 ln 0.6 + 1 ln 0.2) / 10; the model: 6 rows at 0.8, 4 at 0.1.
    prior = -(5 * math.log(0.2) + 5 * math.log(0.6)) / 10
    model = -(6 * math.log(0.8) + 4 * math.log(0.1)) / 10
    assert r["prior_log_loss"] == pytest.approx(prior, abs=1e-6)
    assert r["log_loss"] == pytest.approx(model, abs=1e-6)
    assert r["log_loss_lift"] == pytest.approx(prior - model, abs=1e-6)


def test_the_uniform_prior_costs_ln_3_and_an_absent_training_class_is_clipped_not_infinite():
    y = np.array([0, 1, 2, 0, 1, 2])
    assert evaluation.prior_log_loss(y, np.array([5, 5, 5])) == pytest.approx(math.log(3))
    assert math.isfinite(evaluation.prior_log_loss(y, np.array([5, 5, 0])))


def healthy_reports() -> dict:
    rng = np.random.default_rng(0)
    reports = {}
    for split, n in (("train", 700), ("validation", 150), ("test", 150)):
        y = rng.integers(0, 3, n)
        pred = np.where(rng.random(n) < 0.5, y, rng.integers(0, 3, n))
        reports[split] = evaluation.split_report(y, one_hot(pred), np.array([1, 1, 1]))
    return reports


def test_healthy_figures_raise_no_warning():
    assert evaluation.training_warnings(healthy_reports(), {"1h:atr_14": 0.4}) == []


def test_degenerate_labels_collapsed_predictions_and_drift_each_warn():
    reports = healthy_reports()
    # Training labels: 349 BUY and 254 SELL among 130,413 rows, as the reviewer measured.
    y = np.concatenate([np.zeros(349), np.full(254, 2), np.ones(130_413 - 603)]).astype(int)
    reports["train"] = evaluation.split_report(y, one_hot(y), np.bincount(y))
    # The test split predicted HOLD for 97 % of its rows.
    y_test = np.random.default_rng(1).integers(0, 3, 200)
    pred = np.ones(200, dtype=int)
    pred[:6] = 0
    reports["test"] = evaluation.split_report(y_test, one_hot(pred), np.array([1, 1, 1]))
    # Few SELL rows in validation.
    y_val = np.array([0] * 60 + [1] * 60 + [2] * 5)
    reports["validation"] = evaluation.split_report(y_val, one_hot(y_val), np.array([1, 1, 1]))
    found = evaluation.training_warnings(
        reports, {"1h:ema_50": -4.1, "1h:rsi_14": 0.2}, min_class_share=0.02, min_class_samples=30
    )
    by_code = {w["code"]: w for w in found}
    assert set(by_code) == {"minority_class", "few_samples", "collapsed_predictions", "input_drift"}
    assert set(by_code["minority_class"]["detail"]["shares"]) == {"BUY", "SELL"}
    assert by_code["few_samples"]["detail"]["splits"] == {"validation": {"SELL": 5}}
    assert by_code["collapsed_predictions"]["detail"]["split"] == "test"
    assert by_code["collapsed_predictions"]["detail"]["class"] == "HOLD"
    assert by_code["input_drift"]["detail"]["features"] == {"1h:ema_50": -4.1}
    assert all(w["message"] for w in found)


def test_feature_drift_is_the_test_mean_in_training_deviations_and_skips_fuzzy_inputs():
    train = np.array([[0.0, 0.5, 1.0], [2.0, 0.5, 1.0], [0.0, 0.1, 1.0], [2.0, 0.9, 1.0]])
    test = np.array([[7.0, 0.0, 1.0], [7.0, 0.0, 1.0]])
    names = ["1h:level", "1h:zone.low", "1h:flat"]
    kinds = {"level": "indicator", "zone.low": "fuzzy", "flat": "indicator"}
    # Train mean 1, std 1: a test mean of 7 is 6 deviations away; the constant column has no scale.
    assert evaluation.feature_drift(train, test, names, kinds) == {"1h:level": 6.0}


def random_walk_bars(n: int = 4000, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 1.1 * np.exp(np.cumsum(rng.normal(0, 0.0015, n)))
    open_ = np.concatenate(([close[0]], close[:-1]))
    spread = np.abs(rng.normal(0, 0.0008, n)) * close
    index = pd.date_range("2017-01-02", periods=n, freq="1h", tz="UTC")
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": np.zeros(n),
        },
        index=index,
    )


def run(config: dict, loader, tmp_path, **kwargs) -> tuple[TrainingExecutor, dict]:
    ex = TrainingExecutor(
        config=config, models_dir=tmp_path, load_bars=loader, run_id="run_eval", **kwargs
    )
    return ex, ex.run()


def test_a_model_of_a_random_walk_has_no_lift_over_the_baselines(tmp_path):
    raw = copy.deepcopy(SMALL_STRATEGY)
    raw["training_data"]["history"] = {"start": None, "end": None}
    raw["labels"] = {"type": "forward_return", "horizon": 6, "threshold": 0.003}
    raw["model"]["training"]["class_weights"] = "none"
    _, result = run(validate_strategy(raw), make_loader(random_walk_bars()), tmp_path, save=False)
    test = result["metrics"]["test"]
    assert abs(test["accuracy_lift"]) < 0.05
    assert abs(test["log_loss_lift"]) < 0.05
    assert test["accuracy"] == pytest.approx(test["majority_rate"] + test["accuracy_lift"])
    assert test["loss_class_weighted"] is False


def test_a_real_run_reports_baselines_for_every_split_and_names_the_weighted_loss(eurusd, tmp_path):
    ex, result = run(
        validate_strategy(copy.deepcopy(SMALL_STRATEGY)), make_loader(eurusd), tmp_path
    )
    for split in ("train", "validation", "test"):
        m, r = result["metrics"][split], result["reports"][split]
        assert m["loss_class_weighted"] is True  # class_weights defaults to balanced
        counts = np.array(list(r["class_balance"].values()))
        assert m["majority_rate"] == pytest.approx(counts.max() / counts.sum(), abs=1e-6)
        assert np.array(r["confusion_matrix"]["matrix"]).sum() == m["samples"]
        # The prior is the training split's frequencies, evaluated on this split.
        train = np.array(list(result["reports"]["train"]["class_balance"].values()))
        prior = train / train.sum()
        y = np.repeat(np.arange(3), counts)
        assert m["prior_log_loss"] == pytest.approx(-np.log(prior[y]).mean(), abs=1e-6)
        assert m["log_loss"] != m["loss"]  # the unweighted loss is its own figure
    assert (np.asarray(result["reports"]["test"]["predicted_balance"]["BUY"])) == int(
        (ex.test_predictions == 0).sum()
    )
    assert isinstance(result["warnings"], list)
    assert set(result["feature_drift"]) == {"1h:macd.histogram", "1h:atr_14.value"}  # obv: constant


def test_equal_seeds_give_equal_weights_sha256_and_other_seeds_differ(eurusd, tmp_path):
    config = validate_strategy(copy.deepcopy(SMALL_STRATEGY))
    loader = make_loader(eurusd)
    _, a = run(config, loader, tmp_path / "a")
    _, b = run(config, loader, tmp_path / "b")
    _, c = run(config, loader, tmp_path / "c", seed=99)
    assert a["model"]["weights_sha256"] == b["model"]["weights_sha256"]
    assert a["model"]["weights_sha256"] != c["model"]["weights_sha256"]
    # The files differ (their metadata holds the save time); the weights digest does not.
    path_a, path_b = a["model"]["artifact_path"], b["model"]["artifact_path"]
    assert sha256_file(path_a) != sha256_file(path_b)
    bundle = load_artifact(path_a)
    assert weights_sha256(bundle["state_dict"]) == a["model"]["weights_sha256"]


def test_weights_sha256_depends_on_values_dtype_and_shape_but_not_on_insertion_order():
    w = torch.arange(6, dtype=torch.float32)
    base = weights_sha256({"a": w.reshape(2, 3), "b": torch.ones(2)})
    assert weights_sha256({"b": torch.ones(2), "a": w.reshape(2, 3)}) == base
    assert weights_sha256({"a": w.reshape(3, 2), "b": torch.ones(2)}) != base
    assert weights_sha256({"a": w.reshape(2, 3).double(), "b": torch.ones(2)}) != base
    changed = w.clone()
    changed[0] = 1e-7
    assert weights_sha256({"a": changed.reshape(2, 3), "b": torch.ones(2)}) != base
