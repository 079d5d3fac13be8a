"""Training checkpoints at the executor: cadence by epochs and by the injected clock, written on
a cancel, atomic with a sha256 record, and a resumed run ending bit-identical to an
uninterrupted one (weights, optimiser, RNG states, best-so-far, early-stopping counters)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from operations.cancellation import CancellationToken, OperationCancelled
from tests.training.conftest import small_config_with
from training.artifacts import weights_sha256
from training.bridge import TrainingProgressBridge
from training.checkpoint import (
    RECORD_NAME,
    CheckpointCorrupted,
    CheckpointPolicy,
    load_checkpoint_bytes,
    read_checkpoint_bytes,
    restore_rng_states,
    rng_states,
    verify_checkpoint,
)
from training.executor import TrainingExecutor

EPOCHS = 6


def executor(config, loader, tmp_path, **kwargs) -> TrainingExecutor:
    return TrainingExecutor(
        config=config, models_dir=tmp_path, load_bars=loader, run_id="run_ckpt", **kwargs
    )


class CancelAfterEpoch(TrainingProgressBridge):
    """Asks for a cancel as epoch `at` ends, as a reader's request would arrive."""

    __slots__ = ("at", "token")

    def __init__(self, token: CancellationToken, at: int) -> None:
        super().__init__()
        self.token, self.at = token, at

    def on_epoch(self, epoch, *args) -> None:
        super().on_epoch(epoch, *args)
        if epoch == self.at:
            self.token.cancel("test")


class StepClock:
    """A clock that moves on only when an epoch ends (`step` seconds each)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TickingBridge(TrainingProgressBridge):
    __slots__ = ("clock", "step")

    def __init__(self, clock: StepClock, step: float) -> None:
        super().__init__()
        self.clock, self.step = clock, step

    def on_epoch(self, epoch, *args) -> None:
        super().on_epoch(epoch, *args)
        self.clock.now += self.step


@pytest.fixture
def config():
    # Early stopping on (with a patience that does not trigger in 6 epochs): its counter and the
    # best-so-far weights are part of what a checkpoint carries.
    return small_config_with(
        model__training__epochs=EPOCHS,
        model__training__early_stopping={"patience": 50, "min_delta": 0.0},
    )


@pytest.fixture
def uninterrupted(config, csv_loader, tmp_path):
    ex = executor(config, csv_loader, tmp_path / "plain", save=False)
    result = ex.run()
    return ex, result


def _interrupted_at(config, csv_loader, folder, at: int, every: int = 2) -> TrainingExecutor:
    token = CancellationToken()
    ex = executor(
        config,
        csv_loader,
        folder / "models",
        save=False,
        token=token,
        bridge=CancelAfterEpoch(token, at),
        checkpoint_dir=folder / "ckpt",
        checkpoint_policy=CheckpointPolicy(every_epochs=every, every_seconds=0),
    )
    with pytest.raises(OperationCancelled):
        ex.run()
    return ex


def _resumed(config, csv_loader, folder, offset: int = 0) -> TrainingExecutor:
    record, data = read_checkpoint_bytes(folder / "ckpt")
    state = load_checkpoint_bytes(data, expected_sha256=record["sha256"], name=record["file"])
    ex = executor(
        config,
        csv_loader,
        folder / "models2",
        save=False,
        resume_state=state,
        metrics_offset=offset,
        checkpoint_dir=folder / "ckpt2",
    )
    ex.run()
    return ex


def test_a_cancel_writes_the_checkpoint_of_the_last_finished_epoch(config, csv_loader, tmp_path):
    ex = _interrupted_at(config, csv_loader, tmp_path, at=3)
    # Epoch 2 by the cadence, epoch 3 when the cancel was seen in epoch 4.
    assert ex.checkpoints_written == [2, 3]
    record = verify_checkpoint(tmp_path / "ckpt")
    assert record["epoch"] == 3
    assert record["metrics_seq"] == 3
    # One file, the one the record names; no temporary left.
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == [record["file"], RECORD_NAME]
    assert ex._partial()["checkpoint"]["epoch"] == 3


def test_a_resumed_run_ends_bit_identical_to_an_uninterrupted_one(
    config, csv_loader, tmp_path, uninterrupted
):
    plain, plain_result = uninterrupted
    _interrupted_at(config, csv_loader, tmp_path, at=3)
    resumed = _resumed(config, csv_loader, tmp_path, offset=3)
    # Only the epochs after the checkpoint ran.
    assert resumed.epochs_trained == EPOCHS - 3
    a, b = plain.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert weights_sha256(a) == weights_sha256(b)
    keys = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy")
    history = [{k: e[k] for k in keys} for e in resumed.history]
    assert history == [{k: e[k] for k in keys} for e in plain_result["training"]["history"]]
    # The operation already held 3 records: the bridge carries only the epochs after them.
    assert [e["epoch"] for e in resumed.bridge.epochs()] == [4, 5, 6]


def test_a_resume_emits_again_the_records_its_operation_lacks(config, csv_loader, tmp_path):
    _interrupted_at(config, csv_loader, tmp_path, at=3)
    # The run was killed before its last two records were stored: it holds one.
    resumed = _resumed(config, csv_loader, tmp_path, offset=1)
    assert [e["epoch"] for e in resumed.bridge.epochs()] == [2, 3, 4, 5, 6]


def test_checkpoints_follow_the_epoch_cadence_and_skip_the_last_epoch(config, csv_loader, tmp_path):
    ex = executor(
        config,
        csv_loader,
        tmp_path / "m",
        save=False,
        checkpoint_dir=tmp_path / "ckpt",
        checkpoint_policy=CheckpointPolicy(every_epochs=2, every_seconds=0),
    )
    ex.run()
    assert ex.checkpoints_written == [2, 4]


def test_checkpoints_follow_the_injected_clock(config, csv_loader, tmp_path):
    clock = StepClock()
    ex = executor(
        config,
        csv_loader,
        tmp_path / "m",
        save=False,
        bridge=TickingBridge(clock, 4.0),
        checkpoint_dir=tmp_path / "ckpt",
        checkpoint_policy=CheckpointPolicy(every_epochs=0, every_seconds=10, clock=clock),
    )
    ex.run()
    # 4 s an epoch, one checkpoint once 10 s have passed since the last: epochs 3 (12 s)
    # and 6 would be next, but the last epoch writes none.
    assert ex.checkpoints_written == [3]


def test_a_corrupted_checkpoint_is_refused_naming_it(config, csv_loader, tmp_path):
    _interrupted_at(config, csv_loader, tmp_path, at=2)
    record = json.loads((tmp_path / "ckpt" / RECORD_NAME).read_text())
    path = tmp_path / "ckpt" / record["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointCorrupted, match=f"sha256 mismatch for {record['file']}"):
        verify_checkpoint(tmp_path / "ckpt")
    with pytest.raises(CheckpointCorrupted, match="sha256 mismatch"):
        load_checkpoint_bytes(bytes(data), expected_sha256=record["sha256"], name=record["file"])


def test_rng_states_round_trip_through_a_weights_only_load(tmp_path):
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    states = rng_states()
    torch.save(states, tmp_path / "rng.pt")
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    restore_rng_states(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_resumed_run_on_cuda_ends_with_the_weights_of_an_uninterrupted_one(
    config, csv_loader, tmp_path
):
    # The dropout masks come from a generator on the device: its state is in the checkpoint too.
    cuda = small_config_with(
        model__training__epochs=EPOCHS, model__dropout=0.2, model__training__seed=4
    )
    plain = executor(cuda, csv_loader, tmp_path / "plain", save=False, device="cuda")
    plain.run()
    token = CancellationToken()
    first = executor(
        cuda,
        csv_loader,
        tmp_path / "m1",
        save=False,
        device="cuda",
        token=token,
        bridge=CancelAfterEpoch(token, 3),
        checkpoint_dir=tmp_path / "ckpt",
        checkpoint_policy=CheckpointPolicy(every_epochs=2, every_seconds=0),
    )
    with pytest.raises(OperationCancelled):
        first.run()
    record, data = read_checkpoint_bytes(tmp_path / "ckpt")
    state = load_checkpoint_bytes(data, expected_sha256=record["sha256"], name=record["file"])
    resumed = executor(
        cuda, csv_loader, tmp_path / "m2", save=False, device="cuda", resume_state=state
    )
    resumed.run()
    assert resumed.epochs_trained == EPOCHS - 3
    assert weights_sha256(plain.model.state_dict()) == weights_sha256(resumed.model.state_dict())
