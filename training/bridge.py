"""TrainingProgressBridge: what a training run leaves for readers to pull.

Hot-path writers (`on_batch` every batch, `on_epoch` every epoch) rebind one attribute to a small
tuple (and `on_epoch` appends that tuple to the metric list) — no dict building, no formatting, no
lock. Everything a reader sees (percentage, message, ETA from measured batch times, best epoch,
patience left) is derived from those tuples in `_derived`, on the reader's thread, only when
someone asks. Budget: ≤ 0.5 µs median per write (docs/architecture.md §8; see
benchmarks/bench_training.py).

Epoch records are stored as tuples and turned into the docs/architecture.md §10 shape (`epoch`,
`train_loss`, `train_accuracy`, `val_loss`, `val_accuracy`, `learning_rate`, `duration_seconds`)
when read through `metrics_since`.

No Django imports: host agents and unit tests use it as plain Python.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from operations.bridge import ProgressBridge

EPOCH_FIELDS = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "learning_rate",
    "duration_seconds",
)
# Where the training loop sits in the 0-100 % bar: the pre-training steps take the first 5 %,
# evaluation and saving the last 5 % (they are short next to the epochs).
TRAIN_START_PCT = 5.0
TRAIN_END_PCT = 95.0


def _num(value: float) -> float | None:
    """JSON has no NaN: a NaN loss is shown as null (and the run fails on it anyway)."""
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


def epoch_record(row: tuple) -> dict[str, Any]:
    """A stored epoch tuple → the §4 record payload (plus `kind` and `recorded_at`)."""
    rec: dict[str, Any] = {"kind": "epoch", "recorded_at": row[9]}
    for name, value in zip(EPOCH_FIELDS, row, strict=False):
        rec[name] = value if name == "epoch" else _num(value)
    return rec


class TrainingProgressBridge(ProgressBridge):
    """Progress of one training run: phases, per-batch position, per-epoch metrics."""

    __slots__ = ("_batch", "_epoch", "_plan")

    def __init__(self) -> None:
        super().__init__()
        # (epoch, batch, loss, perf_counter) — the last finished batch.
        self._batch: tuple[int, int, float, float] | None = None
        # (epoch, train_loss, train_acc, val_loss, val_acc, lr, duration, best_epoch,
        #  patience_left, wall time) — the last finished epoch; the same tuple is in _metrics.
        self._epoch: tuple | None = None
        # (epochs_total, batches_per_epoch, perf_counter at start, patience, train_samples,
        #  batch_size, device)
        self._plan: tuple[int, int, float, int | None, int, int, str] | None = None

    # --- writers (worker thread) --------------------------------------------------------------
    def on_phase(
        self,
        phase: str,
        message: str,
        *,
        step: int | None = None,
        steps_total: int | None = None,
        percentage: float | None = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        """A pre- or post-training step (load, indicators, split, evaluate, save…)."""
        self.update(
            phase=phase,
            message=message,
            steps_completed=step,
            steps_total=steps_total,
            percentage=percentage,
            context=context,
        )

    def on_training_start(
        self,
        *,
        epochs: int,
        batches_per_epoch: int,
        patience: int | None,
        train_samples: int,
        batch_size: int,
        step: int,
        steps_total: int,
        device: str = "",
    ) -> None:
        self._plan = (
            epochs,
            batches_per_epoch,
            time.perf_counter(),
            patience,
            train_samples,
            batch_size,
            device,
        )
        self.update(
            phase="training",
            message=f"epoch 1/{epochs} starting",
            steps_completed=step,
            steps_total=steps_total,
            percentage=TRAIN_START_PCT,
            items_processed=0,
            items_total=epochs * batches_per_epoch,
        )

    # The clocks are bound as defaults: a global plus attribute lookup per call is a fifth of the
    # budget. `loss` is a float, or a 0-d tensor on an accelerator: stored as is (no GPU sync
    # here), turned into a float only when a reader asks.
    def on_batch(
        self, epoch: int, batch: int, loss: float, _clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self._batch = (epoch, batch, loss, _clock())

    # Positional on purpose: keyword passing costs measurable time on a ≤ 0.5 µs budget.
    def on_epoch(  # noqa: PLR0917
        self,
        epoch: int,
        train_loss: float,
        train_accuracy: float,
        val_loss: float,
        val_accuracy: float,
        learning_rate: float,
        duration_seconds: float,
        best_epoch: int,
        patience_left: int | None,
        _now: Callable[[], float] = time.time,
    ) -> None:
        row = (
            epoch,
            train_loss,
            train_accuracy,
            val_loss,
            val_accuracy,
            learning_rate,
            duration_seconds,
            best_epoch,
            patience_left,
            _now(),
        )
        # list.append is atomic: a reader slicing [cursor:len] sees the record once, in order.
        self._metrics.append(row)
        self._epoch = row

    # --- readers --------------------------------------------------------------------------------
    def metrics_since(self, cursor: int) -> tuple[list[dict[str, Any]], int]:
        records, new_cursor = super().metrics_since(cursor)
        return [epoch_record(r) if isinstance(r, tuple) else r for r in records], new_cursor

    def epochs(self) -> list[dict[str, Any]]:
        """Every epoch record so far (for partial results on cancel or failure)."""
        return [epoch_record(r) for r in list(self._metrics) if isinstance(r, tuple)]

    def _derived(self, state: dict[str, Any]) -> dict[str, Any]:
        plan, batch, last = self._plan, self._batch, self._epoch
        if plan is None or state["phase"] != "training":
            return {}
        epochs, per_epoch, started, patience, samples, batch_size, device = plan
        total = epochs * per_epoch
        context: dict[str, Any] = {
            "device": device,
            "epochs_total": epochs,
            "batches_per_epoch": per_epoch,
            "train_samples": samples,
            "batch_size": batch_size,
            "patience": patience,
        }
        derived: dict[str, Any] = {"items_total": total, "context": context}
        if last is not None:
            context.update(
                best_epoch=last[7],
                patience_left=last[8],
                last_epoch=epoch_record(last),
            )
        if batch is None:
            return derived
        epoch, index, loss, at = batch
        if not isinstance(loss, float):
            loss = float(loss)  # a device tensor: synced here, on the reader's thread
        done = (epoch - 1) * per_epoch + index
        elapsed = max(at - started, 1e-9)
        per_batch = elapsed / done
        context.update(
            epoch=epoch,
            batch=index,
            loss=_num(loss),
            seconds_per_batch=round(per_batch, 6),
            samples_per_second=round(batch_size / per_batch, 1),
        )
        fraction = done / total
        derived.update(
            percentage=TRAIN_START_PCT + (TRAIN_END_PCT - TRAIN_START_PCT) * fraction,
            message=f"epoch {epoch}/{epochs} · batch {index}/{per_epoch} · loss {loss:.4f}",
            items_processed=done,
            # Measured time per batch times batches left in the planned epochs (an upper bound when
            # early stopping ends the run sooner).
            eta_seconds=round(per_batch * (total - done), 1),
        )
        return derived
