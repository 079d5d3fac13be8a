"""Worker functions for tests: controllable, deterministic, real threads."""

from __future__ import annotations

import threading
import time
from typing import Any

from operations.bridge import ProgressBridge
from operations.execution import operation_launch
from operations.kinds import Launch
from operations.local import WorkContext
from operations.models import Operation


class GatedWork:
    """Reports 10 %, then waits for `release` (checking its cancel token) and finishes."""

    def __init__(self, metrics_before_wait: int = 0) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.metrics_before_wait = metrics_before_wait

    def __call__(self, ctx: WorkContext) -> dict[str, Any]:
        for i in range(self.metrics_before_wait):
            ctx.bridge.append_metric("step", {"i": i})
        ctx.bridge.update(percentage=10.0, message="waiting at the gate", phase="gate")
        self.started.set()
        while not self.release.wait(0.005):
            ctx.token.raise_if_cancelled("at the gate", partial_result={"kept": "partial"})
        ctx.bridge.update(percentage=100.0, message="through the gate")
        return {"gate": "passed"}


def launch(
    work, *, bridge: ProgressBridge | None = None, operation_type: str = "test", user=None
) -> Operation:
    return operation_launch(
        operation_type=operation_type,
        launch=Launch(work=work, bridge=bridge or ProgressBridge(), metadata={}),
        user=user,
    )


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
