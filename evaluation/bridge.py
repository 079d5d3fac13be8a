"""EvaluationProgressBridge: the progress of a walk-forward evaluation, one fold × seed at a time.

Each fold × seed trains with the training pipeline against its own `TrainingProgressBridge`
(batches, epochs); this bridge holds which one runs (`start_unit`, once per fold × seed, not in
any hot loop) and derives, when a reader asks, the whole run's percentage, the phase
("fold 3 of 5 · seed 2 of 3"), the message (that fold's epoch and batch) and an ETA measured
from the fold × seed runs finished in this run (none before the first one ends). Finished
folds are `fold` metric records (`append_metric`), which the operation page charts.

No Django imports.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from operations.bridge import ProgressBridge
from training.bridge import TrainingProgressBridge


class EvaluationProgressBridge(ProgressBridge):
    __slots__ = ("_clock", "_unit")
    eta_from_percentage = False

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        # (inner bridge, units done, units total, label, weight of the inner percentage,
        #  clock when this run's first unit started or None, units finished in this run)
        self._unit: tuple[TrainingProgressBridge, int, int, str, float, float | None, int] | None
        self._unit = None

    # --- writers (worker thread, once per fold × seed) ----------------------------------------
    def start_setup(self, inner: TrainingProgressBridge, *, total: int) -> None:
        """Loading bars and building features: shown, at 0 % of the folds."""
        self._unit = (inner, 0, max(total, 1), "preparing features", 0.0, None, 0)

    def start_unit(
        self,
        inner: TrainingProgressBridge,
        *,
        done: int,
        total: int,
        label: str,
        started: float,
        ran: int,
    ) -> None:
        self._unit = (inner, done, total, label, 1.0, started, ran)

    def end_units(self, message: str) -> None:
        self._unit = None
        self.update(percentage=100.0, phase="aggregating", message=message, eta_seconds=None)

    def now(self) -> float:
        return self._clock()

    # --- readers --------------------------------------------------------------------------------
    def _derived(self, state: dict[str, Any]) -> dict[str, Any]:
        unit = self._unit
        if unit is None:
            return {}
        inner, done, total, label, weight, started, ran = unit
        snap = inner.snapshot()
        fraction = weight * snap["percentage"] / 100.0
        derived: dict[str, Any] = {
            "percentage": 100.0 * (done + fraction) / total,
            "phase": label,
            # The phase names the fold and seed; the message says where that run is.
            "message": snap["message"],
            "steps_completed": done,
            "steps_total": total,
            "items_processed": done,
            "items_total": total,
            "context": {**snap["context"], "unit": done + 1, "units_total": total},
        }
        if started is not None and ran > 0:
            elapsed = max(self._clock() - started, 0.0)
            per_unit = elapsed / (ran + fraction)
            derived["eta_seconds"] = round(per_unit * max(total - done - fraction, 0.0), 1)
        return derived
