"""Cancellation tokens: how a reader's cancel request reaches a worker's next boundary.

The token is set by the cancel service; the worker checks it at its own stop points (every batch,
every segment, during waits) and acknowledges by raising `OperationCancelled` with where it stopped.
"""

from __future__ import annotations

import threading
import time
from typing import Any


class OperationCancelled(Exception):
    """Raised by a worker that saw its token set; carries where it stopped and what it kept."""

    def __init__(self, stop_point: str, partial_result: dict[str, Any] | None = None) -> None:
        super().__init__(f"cancelled at {stop_point}")
        self.stop_point = stop_point
        self.partial_result = partial_result


class CancellationToken:
    """Thread-safe, one-way flag. Checking it is one attribute read (cheap enough per batch)."""

    __slots__ = ("_event", "reason", "requested_at")

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""
        self.requested_at: float | None = None

    def cancel(self, reason: str = "") -> None:
        if not self._event.is_set():
            self.reason = reason
            self.requested_at = time.time()
            self._event.set()

    @property
    def is_cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(
        self, stop_point: str, partial_result: dict[str, Any] | None = None
    ) -> None:
        if self._event.is_set():
            raise OperationCancelled(stop_point, partial_result)

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking early on cancel. Returns True if cancelled."""
        return self._event.wait(max(seconds, 0.0))
