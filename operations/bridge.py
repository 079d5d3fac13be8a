"""ProgressBridge: where a worker leaves its progress and metrics for readers to pull.

Guarantees (the pull design depends on them):

* Writers do no I/O, take no lock, read no clock, call nothing outside this object and never
  raise into the worker. `update` is the state dict's own `dict.update`, bound per bridge: the
  call's keywords are merged into the state in place by one C call, with no Python frame (the
  keyword call itself is most of the budget). A metric is one `list.append` of a
  `(kind, payload)` tuple. Budget: ≤ 0.25 µs thread CPU per write (docs/architecture.md §8;
  benchmarks/bench_operations.py).
* Everything else is the reader's work, done when someone asks: copying, filling in defaults,
  clamping, deriving, building the metric dicts and stamping them.
* Readers get a consistent snapshot: the writer's `dict.update` and the reader's `dict(...)`
  copy are each one C call that holds the GIL throughout (the keys are str, the values plain
  data), so a reader sees every update whole or not at all, never half-applied. (Free-threaded
  builds lock the dict for both.)
* Metrics are append-only. `list.append` is atomic, so a reader slicing `[cursor:len]` sees every
  record exactly once, in order, however many readers pull while the worker appends. A record's
  `recorded_at` is when a reader first saw it: stamped once, under the readers' lock (which no
  writer takes), so every reader and every pull agree on it. While a run is local the owner
  refresh reads its bridge every TTL (docs/architecture.md §5), so that is at most one TTL after
  the worker wrote it.
* A metric payload is kept, not copied (a mapping that is not a dict is copied into one): hand
  over a dict you do not change afterwards.

No Django imports: agents and unit tests use it as plain Python.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
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
    """Generic bridge; subclasses add domain writers (`on_epoch`, `on_segment`…).

    `update(**fields)` publishes a new state: the given fields replace their old values, the rest
    are kept. Fields: percentage, message, phase, steps_completed, steps_total, items_processed,
    items_total, context (dict), eta_seconds. No validation there (the hot path): the reader side
    clamps and fills in. It is the state dict's bound `update`, kept in a slot, so a write runs
    no Python code; a subclass may still wrap it in a method that calls `super().update(...)`.
    """

    __slots__ = (
        "_metrics",
        "_read_lock",
        "_stamps",
        "_started",
        "_state",
        "bridge_reads",
        "final_result",
        "update",
    )
    update: Callable[..., None]
    # A worker that gives no ETA gets one from the percentage and the time since the bridge was
    # made. Kinds whose first percent is setup (loading, connecting, building a model) say no
    # and measure their own from finished units (epochs, segments): a rate taken from setup
    # time promises nothing.
    eta_from_percentage: bool = True

    def __init__(self) -> None:
        # Changed by the worker only: the state in place by `update`, the metrics by appends.
        self._state: dict[str, Any] = _initial_state()
        self._metrics: list[tuple[Any, ...]] = []
        # Through the slot itself: a subclass's `update` method would hide it from `self.update =`.
        _UPDATE_SLOT.__set__(self, self._state.update)
        # Reader side: the records' stamps change under this lock only.
        self._read_lock = threading.Lock()
        self._stamps: list[float] = []
        self._started = time.monotonic()
        # Counts reader pulls: the TTL-cache tests and benchmarks assert on it.
        self.bridge_reads = 0
        # A worker may leave partial results here before it stops (e.g. on cancel).
        self.final_result: dict[str, Any] | None = None

    # --- writer side (worker thread) -----------------------------------------------------------
    def append_metric(self, kind: str, payload: dict[str, Any]) -> None:
        """Append one metric record (`kind` plus a JSON-able payload, kept as given)."""
        try:
            if type(payload) is not dict:
                payload = dict(payload)  # a mapping is copied; anything else is refused here
            self._metrics.append((kind, payload))
        except Exception:  # a progress report must never break the work it reports on
            logger.exception("ProgressBridge.append_metric failed; metric dropped")

    # --- reader side (any thread) --------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of the current state, with a linear ETA when the worker gave none
        (unless the kind measures its own: `eta_from_percentage`)."""
        with self._read_lock:
            self.bridge_reads += 1
        state = dict(self._state)  # one C call: never a half-applied update
        snap = {key: state.get(key, default) for key, default in _initial_state().items()}
        snap["context"] = dict(state.get("context") or {})
        snap.update(self._derived(state))
        try:
            pct = float(snap["percentage"])
        except (TypeError, ValueError):
            pct = 0.0
        snap["percentage"] = min(max(pct, 0.0), 100.0)
        if snap["eta_seconds"] is None and self.eta_from_percentage:
            snap["eta_seconds"] = self._linear_eta(snap["percentage"])
        return snap

    def metrics_since(self, cursor: int) -> tuple[list[dict[str, Any]], int]:
        """Records with index ≥ cursor and the cursor to use next time."""
        rows = self._metrics
        end = len(rows)
        if cursor >= end:
            return [], cursor
        stamps = self._stamped(end)
        record = self._record
        pairs = zip(rows[cursor:end], stamps[cursor:end], strict=True)
        return [record(row, stamp) for row, stamp in pairs], end

    @property
    def metrics_count(self) -> int:
        return len(self._metrics)

    def _stamped(self, end: int) -> list[float]:
        """The stamps list, covering at least the first `end` rows (new ones stamped now).

        Stamps are only ever appended, so the caller may index them after the lock is released.
        """
        stamps = self._stamps
        if len(stamps) < end:
            with self._read_lock:
                missing = end - len(stamps)
                if missing > 0:
                    stamps.extend([time.time()] * missing)
        return stamps

    # --- hooks for subclasses ------------------------------------------------------------------
    def _record(self, row: tuple[Any, ...], recorded_at: float) -> dict[str, Any]:
        """A stored metric row → its record; subclasses with their own row shapes extend it."""
        kind, payload = row
        return {"kind": kind, "recorded_at": recorded_at, **payload}

    def _derived(self, state: dict[str, Any]) -> dict[str, Any]:
        """Fields a subclass computes at read time from what its fast writers stored."""
        return {}

    def _linear_eta(self, percentage: float) -> float | None:
        if percentage <= 0.0 or percentage >= 100.0:
            return None
        elapsed = time.monotonic() - self._started
        return round(elapsed * (100.0 - percentage) / percentage, 1)


# The slot's own setter (see ProgressBridge.__init__).
_UPDATE_SLOT = ProgressBridge.__dict__["update"]
