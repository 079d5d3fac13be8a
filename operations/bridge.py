"""ProgressBridge: where a worker leaves its progress and metrics for readers to pull.

Guarantees (the pull design depends on them):

* Writer methods do no I/O, take no lock, call nothing outside this object and never raise into
  the worker: an update is building one small dict and rebinding one attribute.
* Readers get a consistent snapshot: the writer publishes a *new* state dict by rebinding
  `self._state` (a single atomic store under the GIL), never mutates a published one.
* Metrics are append-only. `list.append` is atomic, so a reader slicing `[cursor:len]` sees every
  record exactly once, in order, however many readers pull while the worker appends.

No Django imports: agents and unit tests use it as plain Python.
"""

from __future__ import annotations

import logging
import time
from typing import Any

logger = logging.getLogger(__name__)

STATE_FIELDS = (
    "percentage",
    "message",
    "phase",
    "steps_completed",
    "steps_total",
    "items_processed",
    "items_total",
)


def _initial_state() -> dict[str, Any]:
    return {
        "percentage": 0.0,
        "message": "",
        "phase": "",
        "steps_completed": 0,
        "steps_total": 0,
        "items_processed": 0,
        "items_total": 0,
        "context": {},
        "eta_seconds": None,
    }


class ProgressBridge:
    """Generic bridge; subclasses add domain writers (`on_epoch`, `on_segment`…)."""

    __slots__ = ("_metrics", "_started", "_state", "bridge_reads", "final_result")

    def __init__(self) -> None:
        self._state: dict[str, Any] = _initial_state()
        self._metrics: list[dict[str, Any]] = []
        self._started = time.monotonic()
        # Counts reader pulls: the TTL-cache tests and benchmarks assert on it.
        self.bridge_reads = 0
        # A worker may leave partial results here before it stops (e.g. on cancel).
        self.final_result: dict[str, Any] | None = None

    # --- writer side (worker thread) -----------------------------------------------------------
    def update(self, **fields: Any) -> None:
        """Publish a new state: the given fields replace their old values, the rest are kept.

        Fields: percentage, message, phase, steps_completed, steps_total, items_processed,
        items_total, context (dict), eta_seconds. One dict merge and one rebinding — no
        validation here (the hot path); the reader side clamps and fills in.
        """
        try:
            self._state = {**self._state, **fields}
        except Exception:  # a progress report must never break the work it reports on
            logger.exception("ProgressBridge.update failed; progress not recorded")

    def append_metric(self, kind: str, payload: dict[str, Any]) -> None:
        """Append one metric record (`kind` plus a JSON-able payload)."""
        try:
            self._metrics.append({"kind": kind, "recorded_at": time.time(), **payload})
        except Exception:
            logger.exception("ProgressBridge.append_metric failed; metric dropped")

    # --- reader side (any thread) --------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of the current state, with an ETA when the worker gave none."""
        self.bridge_reads += 1
        state = self._state  # one load: the dict is never mutated after publication
        snap = {key: state.get(key, default) for key, default in _initial_state().items()}
        snap["context"] = dict(state.get("context") or {})
        snap.update(self._derived(state))
        try:
            pct = float(snap["percentage"])
        except (TypeError, ValueError):
            pct = 0.0
        snap["percentage"] = min(max(pct, 0.0), 100.0)
        if snap["eta_seconds"] is None:
            snap["eta_seconds"] = self._linear_eta(snap["percentage"])
        return snap

    def metrics_since(self, cursor: int) -> tuple[list[dict[str, Any]], int]:
        """Records with index ≥ cursor and the cursor to use next time."""
        end = len(self._metrics)
        if cursor >= end:
            return [], cursor
        return self._metrics[cursor:end], end

    @property
    def metrics_count(self) -> int:
        return len(self._metrics)

    # --- hooks for subclasses ------------------------------------------------------------------
    def _derived(self, state: dict[str, Any]) -> dict[str, Any]:
        """Fields a subclass computes at read time from what its fast writers stored."""
        return {}

    def _linear_eta(self, percentage: float) -> float | None:
        if percentage <= 0.0 or percentage >= 100.0:
            return None
        elapsed = time.monotonic() - self._started
        return round(elapsed * (100.0 - percentage) / percentage, 1)
