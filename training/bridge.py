"""TrainingProgressBridge: what a training run leaves for readers to pull.

Hot-path writers (`on_batch` every batch, `on_epoch` every epoch) store the arguments they were
given as one tuple — `on_batch` rebinds one attribute to it, `on_epoch` appends it to the metric
list — and do nothing else: no clock, no dict, no formatting, no lock. Everything a reader sees
(percentage, message, ETA from the measured pace, best epoch, patience left) is derived from
those tuples in `_derived`, on the reader's thread, only when someone asks; the pace is read on
the reader's clock. Budget: ≤ 0.25 µs thread CPU per write (docs/architecture.md §8; see
benchmarks/bench_training.py).

Epoch rows are turned into the docs/architecture.md §10 shape (`epoch`, `train_loss`,
`train_accuracy`, `val_loss`, `val_accuracy`, `learning_rate`, `duration_seconds`) when read
through `metrics_since`; like every record, their `recorded_at` is when a reader first saw them
(`operations.bridge`).

No Django imports: host agents and unit tests use it as plain Python.
"""

from __future__ import annotations

import math
import time
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
# An epoch row: the EPOCH_FIELDS, then best_epoch and patience_left. Generic metric rows
# (`append_metric`) are (kind, payload) pairs, so the length tells them apart.
EPOCH_ROW_LEN = len(EPOCH_FIELDS) + 2
# Where the training loop sits in the 0-100 % bar: the pre-training steps take the first 5 %,
# evaluation and saving the last 5 % (they are short next to the epochs).
TRAIN_START_PCT = 5.0
TRAIN_END_PCT = 95.0


def _num(value: float) -> float | None:
    """JSON has no NaN: a NaN loss is shown as null (and the run fails on it anyway)."""
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


def epoch_record(row: tuple, recorded_at: float) -> dict[str, Any]:
    """A stored epoch row → the §10 record payload (plus `kind` and `recorded_at`)."""
    rec: dict[str, Any] = {"kind": "epoch", "recorded_at": recorded_at}
    for name, value in zip(EPOCH_FIELDS, row, strict=False):
        rec[name] = value if name == "epoch" else _num(value)
    return rec


class TrainingProgressBridge(ProgressBridge):
    """Progress of one training run: phases, per-batch position, per-epoch metrics."""

    __slots__ = ("_batch", "_plan")
    # No ETA from the setup steps (loading bars, indicators, building the model): only one
    # measured from the batches once an epoch has finished (`_derived`).
    eta_from_percentage = False

    def __init__(self) -> None:
        super().__init__()
        # (epoch, batch, loss) — the last finished batch.
        self._batch: tuple[int, int, float] | None = None
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

    # `loss` is a float, or a 0-d tensor on an accelerator: stored as is (no GPU sync here),
    # turned into a float only when a reader asks.
    def on_batch(self, epoch: int, batch: int, loss: float) -> None:
        self._batch = (epoch, batch, loss)

    # Positional on purpose: keyword passing costs measurable time on a ≤ 0.25 µs budget.
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
    ) -> None:
        # list.append is atomic: a reader slicing [cursor:len] sees the record once, in order.
        self._metrics.append(
            (
                epoch,
                train_loss,
                train_accuracy,
                val_loss,
                val_accuracy,
                learning_rate,
                duration_seconds,
                best_epoch,
                patience_left,
            )
        )

    # --- readers --------------------------------------------------------------------------------
    def _record(self, row: tuple, recorded_at: float) -> dict[str, Any]:
        if len(row) == EPOCH_ROW_LEN:
            return epoch_record(row, recorded_at)
        return super()._record(row, recorded_at)

    def epochs(self) -> list[dict[str, Any]]:
        """Every epoch record so far (for partial results on cancel or failure)."""
        rows = self._metrics[:]
        stamps = self._stamped(len(rows))
        return [
            epoch_record(row, stamps[i]) for i, row in enumerate(rows) if len(row) == EPOCH_ROW_LEN
        ]

    def _last_epoch(self) -> tuple[tuple, float] | None:
        """The newest epoch row and its stamp (the newest row, unless other metrics follow)."""
        rows = self._metrics
        for i in range(len(rows) - 1, -1, -1):
            if len(rows[i]) == EPOCH_ROW_LEN:
                return rows[i], self._stamped(i + 1)[i]
        return None

    def _derived(self, state: dict[str, Any]) -> dict[str, Any]:
        plan, batch = self._plan, self._batch
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
        last = self._last_epoch()
        if last is not None:
            row, stamp = last
            context.update(
                best_epoch=row[7],
                patience_left=row[8],
                last_epoch=epoch_record(row, stamp),
            )
        if batch is None:
            return derived
        epoch, index, loss = batch
        if not isinstance(loss, float):
            loss = float(loss)  # a device tensor: synced here, on the reader's thread
        done = (epoch - 1) * per_epoch + index
        # The pace on the reader's clock: time so far over batches done. It includes the time
        # since the last batch (at most one batch, or one epoch's validation), which is what an
        # ETA should count anyway.
        elapsed = max(time.perf_counter() - started, 1e-9)
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
        )
        if last is not None:
            # Once an epoch has finished: measured time per batch times batches left in the
            # planned epochs (an upper bound when early stopping ends the run sooner). Before
            # that the pace includes the first batches' warm-up and says little.
            derived["eta_seconds"] = round(per_batch * (total - done), 1)
        return derived
