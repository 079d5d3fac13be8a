"""The training device: selection, refusal with a clear message, CPU artifacts from any device.

Tests marked `cuda` run only where torch sees a CUDA device (a GPU agent); the rest fake the
absence of CUDA so they mean the same thing on every machine.
"""

from __future__ import annotations

import logging

import pytest
import torch

from operations.local import local_runs
from operations.models import Operation
from training import services
from training.artifacts import load_artifact
from training.bridge import TrainingProgressBridge
from training.device import describe_device, normalise_device, resolve_device
from training.errors import TrainingDeviceError
from training.executor import TrainingExecutor
from training.predict import ModelPredictor

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture
def no_cuda(monkeypatch):
    """This machine has no CUDA, whatever it really has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def executor(config, loader, tmp_path, **kwargs) -> TrainingExecutor:
    return TrainingExecutor(
        config=config, models_dir=tmp_path, load_bars=loader, run_id="run_dev", **kwargs
    )


# --- selection ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "expected"),
    [(None, "auto"), ("", "auto"), (" CPU ", "cpu"), ("cuda", "cuda"), ("cuda:1", "cuda:1")],
)
def test_device_names_are_normalised(given, expected):
    assert normalise_device(given) == expected


@pytest.mark.parametrize("bad", ["tpu", "cpu:1", "mps:0", "cuda:x", "gpu", 3])
def test_an_unknown_device_name_is_refused_listing_the_choices(bad):
    with pytest.raises(TrainingDeviceError, match=r"auto, cpu, cuda, cuda:N, mps"):
        normalise_device(bad)


def test_auto_picks_the_cpu_when_cuda_is_absent(no_cuda):
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    assert describe_device(resolve_device("auto")) == "cpu"


def test_auto_picks_cuda_when_it_is_there(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert resolve_device("auto") == torch.device("cuda", 0)


def test_cuda_requested_without_cuda_is_refused_naming_the_problem(no_cuda):
    with pytest.raises(TrainingDeviceError) as info:
        resolve_device("cuda")
    message = str(info.value)
    assert "training device 'cuda' was requested but CUDA is not available" in message
    assert "use 'auto' or 'cpu'" in message


def test_a_cuda_index_beyond_the_devices_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(TrainingDeviceError, match=r"has 1 CUDA device\(s\) \(cuda:0 to cuda:0\)"):
        resolve_device("cuda:3")


def test_mps_requested_where_there_is_none_is_refused(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(TrainingDeviceError, match="Apple MPS is not available"):
        resolve_device("mps")


# --- the executor ---------------------------------------------------------------------------
def test_cuda_without_cuda_fails_before_any_data_is_loaded(no_cuda, small_config, tmp_path):
    calls = []

    def loader(*args):
        calls.append(args)
        raise AssertionError("must not load")

    with pytest.raises(TrainingDeviceError, match="CUDA is not available"):
        executor(small_config, loader, tmp_path, device="cuda").run()
    assert calls == []
    assert not list(tmp_path.rglob("*.pt"))


class ContextRecorder(TrainingProgressBridge):
    """Keeps the progress context a reader would see at the first batch."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict | None = None

    def on_batch(self, epoch, batch, loss) -> None:
        super().on_batch(epoch, batch, loss)
        if self.seen is None:
            self.seen = self.snapshot()["context"]


def test_the_device_is_in_the_result_the_step_log_and_the_progress_context(
    small_config, csv_loader, tmp_path, caplog
):
    caplog.set_level(logging.INFO, logger="training.executor")
    bridge = ContextRecorder()
    result = executor(small_config, csv_loader, tmp_path, device="cpu", bridge=bridge).run()
    assert result["training"]["device"] == "cpu"
    assert "Step 5/8: building model (mlp [16, 8], relu) on cpu" in caplog.text
    assert bridge.seen is not None
    assert bridge.seen["device"] == "cpu"
    assert bridge.snapshot()["context"]["device"] == "cpu"  # the saving step keeps it
    assert load_artifact(result["model"]["artifact_path"])["metadata"]["device"] == "cpu"


def test_a_batch_loss_left_as_a_tensor_reads_as_a_float():
    bridge = TrainingProgressBridge()
    bridge.on_training_start(
        epochs=2,
        batches_per_epoch=4,
        patience=None,
        train_samples=64,
        batch_size=16,
        step=5,
        steps_total=8,
        device="cuda:0 Test GPU",
    )
    bridge.update(phase="training")
    bridge.on_batch(1, 2, torch.tensor(0.6931))
    snap = bridge.snapshot()
    assert snap["context"]["loss"] == pytest.approx(0.6931)
    assert isinstance(snap["context"]["loss"], float)
    assert snap["context"]["device"] == "cuda:0 Test GPU"
    assert "loss 0.6931" in snap["message"]


@pytest.mark.django_db(transaction=True)
def test_a_cuda_setting_without_cuda_fails_the_operation_with_the_reason(
    no_cuda, settings, strategies_dir, models_dir, store_bars
):
    settings.KTRDR = {**settings.KTRDR, "TRAINING_DEVICE": "cuda"}
    op = services.training_start(strategy="test_small")
    assert local_runs.wait_idle(timeout=60)
    op = Operation.objects.get(pk=op.pk)
    assert op.status == "failed"
    assert op.error_message.startswith(
        "TrainingDeviceError: training device 'cuda' was requested but CUDA is not available"
    )
    assert not list(models_dir.rglob("*.pt"))


# --- artifacts from any device ----------------------------------------------------------------
DEVICES = ["cpu", pytest.param("cuda", marks=cuda)]


@pytest.mark.parametrize("device", DEVICES)
def test_artifacts_from_any_device_hold_cpu_tensors_and_load_weights_only(
    device, small_config, csv_loader, tmp_path, eurusd
):
    ex = executor(small_config, csv_loader, tmp_path, device=device)
    result = ex.run()
    assert result["training"]["device"].startswith(device)
    assert next(ex.model.parameters()).device.type == device
    path = result["model"]["artifact_path"]
    raw = torch.load(path, map_location=None, weights_only=True)
    assert all(t.device.type == "cpu" for t in raw["state_dict"].values())
    for key in ("train", "validation", "test"):
        assert isinstance(result["metrics"][key]["loss"], float)
        assert isinstance(result["metrics"][key]["accuracy"], float)
    # Scored on the training device, the reloaded model gives the evaluation's predictions.
    predictor = ModelPredictor.from_file(path, device=ex.device)
    out = predictor.predict({"1h": eurusd.loc["2017-01-01":"2017-06-30"]}, "EURUSD")
    test_index = ex.dataset.splits["test"].timestamps
    assert (out.loc[test_index, "class"].to_numpy() == ex.test_predictions).all()


@cuda
def test_cuda_runs_are_reproducible_with_the_same_seed(small_config, csv_loader, tmp_path):
    runs = [
        executor(small_config, csv_loader, tmp_path / str(i), save=False, device="cuda")
        for i in range(2)
    ]
    results = [r.run() for r in runs]
    assert results[0]["metrics"] == results[1]["metrics"]
    a, b = (r.model.state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)


@cuda
def test_a_train_split_too_big_for_the_device_is_batched_over_with_the_same_result(
    small_config, csv_loader, tmp_path
):
    resident = executor(small_config, csv_loader, tmp_path / "a", save=False, device="cuda")
    streamed = executor(small_config, csv_loader, tmp_path / "b", save=False, device="cuda")
    streamed.resident_fraction = 0.0
    first, second = resident.run(), streamed.run()
    assert first["training"]["dataset_on_device"] is True
    assert second["training"]["dataset_on_device"] is False
    assert first["metrics"] == second["metrics"]
