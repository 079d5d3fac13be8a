"""The built-in `countdown` operation: N steps of a configurable length, one metric per step.

It exercises the whole machinery end to end (bridge, pull, cursor, cancel, failure) without real
work, for the demo, the tests and anyone checking an installation.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse

from operations.bridge import ProgressBridge
from operations.exceptions import InvalidInput
from operations.execution import operation_submit
from operations.kinds import Inputs, Launch, OperationKind, Rerun
from operations.local import WorkContext

OPERATION_TYPE = "countdown"
MAX_STEPS = 100_000
MAX_STEP_SECONDS = 60.0
# However it is split into steps, a countdown holds a worker at most this long.
MAX_TOTAL_SECONDS = 24 * 3600.0
# A countdown on an agent can leave a file of this many bytes as its artifact: it stands in for
# a model file, so the fetch/verify path is exercised without training.
MAX_ARTIFACT_BYTES = 64 * 1024 * 1024
ARTIFACT_NAME = "countdown.bin"


def validate_params(
    *, steps: Any = 10, step_seconds: Any = 0.5, fail_at: Any = None
) -> dict[str, Any]:
    """Check the parameters; errors name the field."""
    try:
        steps = int(steps)
    except (TypeError, ValueError):
        raise InvalidInput("steps must be an integer", field="steps") from None
    if not 1 <= steps <= MAX_STEPS:
        raise InvalidInput(f"steps must be between 1 and {MAX_STEPS}", field="steps")
    try:
        step_seconds = float(step_seconds)
    except (TypeError, ValueError):
        raise InvalidInput("step_seconds must be a number", field="step_seconds") from None
    if not 0.0 <= step_seconds <= MAX_STEP_SECONDS:
        raise InvalidInput(
            f"step_seconds must be between 0 and {MAX_STEP_SECONDS}", field="step_seconds"
        )
    if steps * step_seconds > MAX_TOTAL_SECONDS:
        raise InvalidInput(
            f"steps * step_seconds is {steps * step_seconds:,.0f} s; a countdown lasts at most "
            f"{MAX_TOTAL_SECONDS:,.0f} s",
            field="steps",
        )
    if fail_at is not None and fail_at != "":
        try:
            fail_at = int(fail_at)
        except (TypeError, ValueError):
            raise InvalidInput("fail_at must be an integer", field="fail_at") from None
        if not 1 <= fail_at <= steps:
            raise InvalidInput("fail_at must be between 1 and steps", field="fail_at")
    else:
        fail_at = None
    return {"steps": steps, "step_seconds": step_seconds, "fail_at": fail_at}


class CountdownFailure(RuntimeError):
    """The failure a countdown was asked to simulate (`fail_at`)."""


def run_countdown(ctx: WorkContext) -> dict[str, Any]:
    steps = ctx.metadata["steps"]
    step_seconds = ctx.metadata["step_seconds"]
    fail_at = ctx.metadata.get("fail_at")
    bridge = ctx.bridge
    started = time.monotonic()
    bridge.update(phase="counting", steps_total=steps, items_total=steps, message="starting")
    # A worker's own logging, through any logger, lands in its operation's log (operations.oplog).
    ctx.logger.info("counting down %d steps of %.2f s", steps, step_seconds)
    for step in range(1, steps + 1):
        ctx.token.raise_if_cancelled(
            f"step {step}/{steps}", partial_result={"steps_done": step - 1, "steps": steps}
        )
        t0 = time.monotonic()
        # Waiting on the token (not sleeping) lets a cancel cut a long step short.
        if step_seconds and ctx.token.wait(step_seconds):
            ctx.token.raise_if_cancelled(
                f"step {step}/{steps}", partial_result={"steps_done": step - 1, "steps": steps}
            )
        if fail_at == step:
            raise CountdownFailure(f"simulated failure at step {step} of {steps}")
        bridge.append_metric(
            "step",
            {"step": step, "remaining": steps - step, "duration_seconds": time.monotonic() - t0},
        )
        bridge.update(
            percentage=100.0 * step / steps,
            message=f"step {step}/{steps}",
            steps_completed=step,
            items_processed=step,
        )
    return {"steps": steps, "duration_seconds": round(time.monotonic() - started, 3)}


def countdown_artifact_bytes(operation_id: str, size: int) -> bytes:
    """Deterministic content, so a test can recompute the expected sha256."""
    seed = hashlib.sha256(operation_id.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def _artifact_bytes(value: Any) -> int:
    try:
        size = int(value or 0)
    except (TypeError, ValueError):
        raise InvalidInput("artifact_bytes must be an integer", field="artifact_bytes") from None
    if not 0 <= size <= MAX_ARTIFACT_BYTES:
        raise InvalidInput(
            f"artifact_bytes must be between 0 and {MAX_ARTIFACT_BYTES}", field="artifact_bytes"
        )
    return size


def _prepare(metadata: dict[str, Any], _inputs: Inputs | None) -> Launch:
    params = validate_params(
        steps=metadata.get("steps", 10),
        step_seconds=metadata.get("step_seconds", 0.5),
        fail_at=metadata.get("fail_at"),
    )
    size = _artifact_bytes(metadata.get("artifact_bytes"))

    def work(ctx: WorkContext) -> dict[str, Any]:
        result = run_countdown(ctx)
        if size and ctx.artifacts_dir is not None:
            path = ctx.artifacts_dir / ARTIFACT_NAME
            path.write_bytes(countdown_artifact_bytes(ctx.operation_id, size))
        return result

    work.__name__ = "run_countdown"
    metadata = {**metadata, **params}
    if size:
        metadata["artifact_bytes"] = size
    return Launch(work=work, bridge=ProgressBridge(), metadata=metadata)


def _rerun(metadata: dict[str, Any]) -> Rerun:
    """The same steps (and simulated failure, and artifact size), placed as it was asked."""
    params = validate_params(
        steps=metadata.get("steps", 10),
        step_seconds=metadata.get("step_seconds", 0.5),
        fail_at=metadata.get("fail_at"),
    )
    size = _artifact_bytes(metadata.get("artifact_bytes"))
    if size:
        params["artifact_bytes"] = size
    placement = metadata.get("placement") if isinstance(metadata.get("placement"), dict) else {}
    return Rerun(metadata=params, execution_mode=placement.get("execution_mode") or "auto")


def _edit_url(metadata: dict[str, Any]) -> str:
    """The countdown form of the operations list, pre-filled."""
    query = {k: metadata[k] for k in ("steps", "step_seconds") if metadata.get(k) is not None}
    return f"{reverse('operations:list')}?{urlencode(query)}#countdown-form"


COUNTDOWN = OperationKind(
    name=OPERATION_TYPE,
    prepare=_prepare,
    # Runs where it was asked for: here unless an agent is named or `execution_mode=agent`.
    stays_local=lambda _metadata: True,
    rerun=_rerun,
    edit_url=_edit_url,
    description="N steps of a set length, one metric per step: checks the machinery end to end",
)


def countdown_start(
    *,
    steps: Any = 10,
    step_seconds: Any = 0.5,
    fail_at: Any = None,
    user: Any = None,
    execution_mode: str | None = "auto",
    agent: str | None = None,
    detach: bool = False,
):
    """Validate and start a countdown (here, unless an agent is asked for)."""
    params = validate_params(steps=steps, step_seconds=step_seconds, fail_at=fail_at)
    return operation_submit(
        operation_type=OPERATION_TYPE,
        metadata=params,
        execution_mode=execution_mode,
        agent=agent,
        user=user,
        detach=detach,
    )
