"""TrainingExecutor on real EURUSD 1h bars: sane training, determinism, cancel, save and re-load."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pytest
import torch

from operations.cancellation import CancellationToken, OperationCancelled
from tests.training.conftest import small_config_with
from training.artifacts import load_artifact, sha256_file, weights_sha256
from training.bridge import TrainingProgressBridge
from training.dataset import build_dataset
from training.errors import TrainingDataError
from training.executor import TrainingExecutor
from training.predict import ModelPredictor


def executor(config, loader, tmp_path, **kwargs) -> TrainingExecutor:
    return TrainingExecutor(
        config=config, models_dir=tmp_path, load_bars=loader, run_id="run_test", **kwargs
    )


@pytest.fixture(scope="module")
def trained(eurusd, tmp_path_factory):
    """One completed run shared by the read-only checks below."""
    import copy

    from tests.training.conftest import SMALL_STRATEGY, make_loader
    from training.strategy import validate_strategy

    tmp = tmp_path_factory.mktemp("models")
    ex = executor(validate_strategy(copy.deepcopy(SMALL_STRATEGY)), make_loader(eurusd), tmp)
    return ex, ex.run(), tmp


def test_training_on_real_bars_completes_with_sane_figures(trained):
    _, result, _ = trained
    history = result["training"]["history"]
    assert len(history) == 6
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    for record in history:
        for key in ("train_loss", "val_loss", "train_accuracy", "val_accuracy"):
            assert math.isfinite(record[key])
    for split in ("train", "validation", "test"):
        assert 0.0 < result["metrics"][split]["accuracy"] < 0.99
        assert math.isfinite(result["metrics"][split]["loss"])
    assert set(result["per_class"]) == {"BUY", "HOLD", "SELL"}
    assert (
        np.array(result["confusion_matrix"]["matrix"]).sum() == result["metrics"]["test"]["samples"]
    )
    assert result["data"]["symbols"] == ["EURUSD"]
    assert result["data"]["features"] == 6
    assert result["model"]["parameters"] > 0
    assert result["class_balance"]["train"]["BUY"] > 0


def test_epoch_metrics_are_written_to_the_bridge_in_the_architecture_shape(trained):
    ex, _, _ = trained
    records, cursor = ex.bridge.metrics_since(0)
    assert cursor == 6
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert {
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "learning_rate",
        "duration_seconds",
    } <= set(records[0])


def test_the_saved_model_reloads_with_weights_only_and_reproduces_test_predictions(trained, eurusd):
    ex, result, _ = trained
    path = result["model"]["artifact_path"]
    assert sha256_file(path) == result["model"]["sha256"]
    bundle = load_artifact(path, expected_sha256=result["model"]["sha256"])
    assert bundle["config"]["name"] == "test_small"
    predictor = ModelPredictor.from_file(
        path, expected_sha256=result["model"]["sha256"], device=ex.device
    )
    bars = eurusd.loc["2017-01-01":"2017-06-30"]
    predictions = predictor.predict({"1h": bars}, "EURUSD")
    test_index = ex.dataset.splits["test"].timestamps
    np.testing.assert_array_equal(
        predictions.loc[test_index, "class"].to_numpy(), ex.test_predictions
    )
    assert set(predictions["signal"]) <= {"BUY", "HOLD", "SELL"}


def test_new_bars_get_predictions_with_identical_features(trained, eurusd):
    _, result, _ = trained
    predictor = ModelPredictor.from_file(result["model"]["artifact_path"])
    later = eurusd.loc["2018-01-01":"2018-02-01"]
    out = predictor.predict({"1h": later})
    # The first 175 bars are MACD(12, 26, 9)'s convergence (5 x (26 + 9)): no prediction there.
    assert len(out) == len(later) - 175
    np.testing.assert_allclose(out[["p_BUY", "p_HOLD", "p_SELL"]].sum(axis=1), 1.0, rtol=1e-5)


def test_same_seed_and_data_give_identical_metrics_and_weights(small_config, csv_loader, tmp_path):
    runs = [executor(small_config, csv_loader, tmp_path / str(i), save=False) for i in range(2)]
    results = [r.run() for r in runs]
    keys = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy")
    strip = [[{k: e[k] for k in keys} for e in r["training"]["history"]] for r in results]
    assert strip[0] == strip[1]
    assert results[0]["metrics"] == results[1]["metrics"]
    a, b = (r.model.state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_different_seed_gives_different_weights(small_config, csv_loader, tmp_path):
    a = executor(small_config, csv_loader, tmp_path, save=False, seed=1)
    b = executor(small_config, csv_loader, tmp_path, save=False, seed=2)
    a.run()
    b.run()
    assert not torch.equal(a.model.state_dict()["0.weight"], b.model.state_dict()["0.weight"])


class CancelAt(TrainingProgressBridge):
    """Asks for a cancel right after a given batch, as a reader's request would arrive."""

    __slots__ = ("at", "token")

    def __init__(self, token: CancellationToken, at: tuple[int, int]) -> None:
        super().__init__()
        self.token, self.at = token, at

    def on_batch(self, epoch: int, batch: int, loss: float) -> None:
        super().on_batch(epoch, batch, loss)
        if (epoch, batch) == self.at:
            self.token.cancel("test")


def test_cancel_mid_epoch_stops_at_the_next_batch_keeps_history_and_saves_nothing(
    small_config, csv_loader, tmp_path
):
    token = CancellationToken()
    bridge = CancelAt(token, (2, 3))
    ex = executor(small_config, csv_loader, tmp_path, token=token, bridge=bridge)
    with pytest.raises(OperationCancelled) as info:
        ex.run()
    assert info.value.stop_point.startswith("epoch 2 batch 4/")
    assert info.value.partial_result["epochs_completed"] == 1
    assert info.value.partial_result["model_saved"] is False
    assert len(bridge.epochs()) == 1
    assert not list(tmp_path.rglob("*.pt"))
    assert not list(tmp_path.rglob("*.tmp"))


def test_cancel_before_training_stops_in_the_preparation_steps(small_config, csv_loader, tmp_path):
    token = CancellationToken()
    token.cancel("early")
    with pytest.raises(OperationCancelled, match="loading EURUSD 1h"):
        executor(small_config, csv_loader, tmp_path, token=token).run()


def test_steps_are_logged_with_numbers_and_places(small_config, csv_loader, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="training.executor")
    executor(small_config, csv_loader, tmp_path, save=False).run()
    text = caplog.text
    for line in (
        "Step 1/8: loading bars for EURUSD 1h",
        "Step 2/8: computing indicators for EURUSD 1h",
        "Step 3/8: building features for EURUSD",
        "Step 4/8: splitting by time and labelling (zigzag)",
        "Step 6/8: training 6 epoch(s)",
        "Step 7/8: evaluating on the test split",
    ):
        assert line in text


class PhaseRecorder(TrainingProgressBridge):
    __slots__ = ("phases",)

    def __init__(self) -> None:
        super().__init__()
        self.phases: list[str] = []

    def on_phase(self, phase, message, **kwargs) -> None:
        super().on_phase(phase, message, **kwargs)
        self.phases.append(message)


def test_every_indicator_gets_its_own_phase_before_training(small_config, csv_loader, tmp_path):
    bridge = PhaseRecorder()
    executor(small_config, csv_loader, tmp_path, save=False, bridge=bridge).run()
    for ind_id in ("rsi_14", "macd", "atr_14", "obv"):
        assert any(ind_id in m and m.startswith("Step 2/8") for m in bridge.phases), ind_id


def test_a_higher_timeframe_nobody_stored_is_resampled_from_the_base(csv_loader, tmp_path):
    config = small_config_with(training_data__timeframes=["1h", "4h"], model__training__epochs=2)
    result = executor(config, csv_loader, tmp_path, save=False).run()
    assert result["data"]["timeframes"] == ["1h", "4h"]
    assert result["data"]["features"] == 12


def test_a_missing_base_series_fails_naming_symbol_and_timeframe(
    small_config, csv_loader, tmp_path
):
    with pytest.raises(TrainingDataError, match="loading bars GBPUSD 1h: no bars stored"):
        executor(small_config, csv_loader, tmp_path, symbols=["GBPUSD"]).run()


def test_nan_in_the_data_fails_naming_the_place(small_config, eurusd, tmp_path):
    broken = eurusd.copy()
    broken.loc[pd.Timestamp("2017-03-01T10:00Z"), "high"] = np.nan

    def load(symbol, tf, start, end):
        return broken[(broken.index >= start) & (broken.index < end)]

    with pytest.raises(TrainingDataError, match=r"column high \(first at 2017-03-01T10:00Z"):
        executor(small_config, load, tmp_path).run()
    assert not list(tmp_path.rglob("*.pt"))


def test_too_short_a_history_fails_before_training(small_config, csv_loader, tmp_path):
    with pytest.raises(TrainingDataError, match="not enough"):
        executor(small_config, csv_loader, tmp_path, start="2017-03-01", end="2017-03-03").run()


def test_the_evaluation_seams_train_the_same_model_as_a_run(small_config, csv_loader, tmp_path):
    """`build_features` + `fit` + `split_probabilities` (what the walk-forward evaluation calls)
    are `run`'s own steps: on `run`'s split they give the same weights and test figures, and
    the normalisation comes from the train split's rows only."""
    whole = executor(small_config, csv_loader, tmp_path / "run", save=False)
    result = whole.run()
    seams = executor(small_config, csv_loader, tmp_path / "seams", save=False)
    per_symbol, warmups = seams.build_features()
    assert warmups == result["data"]["warmup_rows"]
    dataset = build_dataset(small_config, per_symbol)
    prepared, info = seams.fit(dataset)
    state = {k: v.detach().cpu() for k, v in seams.model.state_dict().items()}
    assert weights_sha256(state) == result["model"]["weights_sha256"]
    assert info["best_epoch"] == result["training"]["best_epoch"]
    spec = prepared["feature_spec"]
    train_x = dataset.splits["train"].x
    for j, name in enumerate(spec["names"]):
        if spec["kinds"][name] != "fuzzy":
            assert spec["means"][j] == pytest.approx(float(train_x[:, j].mean()))
    truth, probs, predicted = seams.split_probabilities(prepared, "test")
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert len(truth) == len(predicted) == result["metrics"]["test"]["samples"]
    accuracy = float((truth == predicted).mean())
    assert accuracy == pytest.approx(result["metrics"]["test"]["accuracy"], abs=1e-6)
