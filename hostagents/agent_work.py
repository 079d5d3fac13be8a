"""What an agent can run: operation types, the role each needs, and how a start payload becomes
local work.

An agent runs exactly the same worker functions as local execution on the backend — same code,
other place (seed M3). A `WorkType` only turns the JSON a backend POSTed into the
`(work, bridge, metadata)` that `operations.services.operation_launch_local` takes. Training and
data loads are looked up lazily, so an agent without those apps' code still serves the rest.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hostagents.artifacts import artifacts_dir, register_artifacts
from operations.bridge import ProgressBridge
from operations.exceptions import InvalidInput, ServiceUnavailable
from operations.local import Work, WorkContext

logger = logging.getLogger(__name__)

MAX_COUNTDOWN_ARTIFACT_BYTES = 64 * 1024 * 1024


@dataclass
class PreparedWork:
    work: Work
    bridge: ProgressBridge
    metadata: dict[str, Any]
    strategy_name: str = ""
    input_series: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class WorkType:
    operation_type: str
    # The agent role this work needs (`training`, `ib`), or None when any agent can run it.
    role: Callable[[dict[str, Any]], str | None]
    prepare: Callable[[dict[str, Any]], PreparedWork]


def with_artifacts(work: Work) -> Work:
    """Give the worker an artifacts folder and put the manifest of what it left there into the
    result summary (registered before the operation is marked completed, so a backend that sees
    `completed` can always fetch them)."""

    def run(ctx: WorkContext) -> dict[str, Any]:
        directory = artifacts_dir(ctx.operation_id)
        directory.mkdir(parents=True, exist_ok=True)
        ctx.metadata["artifacts_dir"] = str(directory)
        result = dict(work(ctx) or {})
        manifest = register_artifacts(ctx.operation_id, directory)
        if manifest:
            result["artifacts"] = manifest
        return result

    run.__name__ = getattr(work, "__name__", "work")
    return run


# --- countdown ----------------------------------------------------------------------------------
def countdown_artifact_bytes(operation_id: str, size: int) -> bytes:
    """Deterministic content, so a test can recompute the expected sha256."""
    seed = hashlib.sha256(operation_id.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def _countdown_prepare(payload: dict[str, Any]) -> PreparedWork:
    from operations.countdown import run_countdown, validate_params

    params = validate_params(
        steps=payload.get("steps", 10),
        step_seconds=payload.get("step_seconds", 0.5),
        fail_at=payload.get("fail_at"),
    )
    try:
        artifact_bytes = int(payload.get("artifact_bytes") or 0)
    except (TypeError, ValueError):
        raise InvalidInput("artifact_bytes must be an integer", field="artifact_bytes") from None
    if not 0 <= artifact_bytes <= MAX_COUNTDOWN_ARTIFACT_BYTES:
        raise InvalidInput(
            f"artifact_bytes must be between 0 and {MAX_COUNTDOWN_ARTIFACT_BYTES}",
            field="artifact_bytes",
        )
    params["artifact_bytes"] = artifact_bytes

    def work(ctx: WorkContext) -> dict[str, Any]:
        result = run_countdown(ctx)
        if artifact_bytes:
            # Stands in for a model file: exercises the fetch/verify path without training.
            from pathlib import Path

            path = Path(ctx.metadata["artifacts_dir"]) / "countdown.bin"
            path.write_bytes(countdown_artifact_bytes(ctx.operation_id, artifact_bytes))
        return result

    return PreparedWork(work=with_artifacts(work), bridge=ProgressBridge(), metadata=params)


# --- training and data loads: the other apps' workers, resolved when first used ---------------
def _missing(what: str, exc: Exception) -> ServiceUnavailable:
    return ServiceUnavailable(f"this agent cannot run {what}: {type(exc).__name__}: {exc}")


def _training_prepare(payload: dict[str, Any]) -> PreparedWork:
    try:
        from hostagents.integrations import prepare_training_on_agent
    except ImportError as exc:  # pragma: no cover - training code not installed
        raise _missing("training", exc) from None
    return prepare_training_on_agent(payload)


def _data_load_prepare(payload: dict[str, Any]) -> PreparedWork:
    try:
        from hostagents.integrations import prepare_data_load_on_agent
    except ImportError as exc:  # pragma: no cover
        raise _missing("data loads", exc) from None
    return prepare_data_load_on_agent(payload)


def _data_load_role(payload: dict[str, Any]) -> str | None:
    return "ib" if str(payload.get("source", "")).lower() == "ib" else None


WORK_TYPES: dict[str, WorkType] = {
    "countdown": WorkType("countdown", role=lambda _p: None, prepare=_countdown_prepare),
    "training": WorkType("training", role=lambda _p: "training", prepare=_training_prepare),
    "data_load": WorkType("data_load", role=_data_load_role, prepare=_data_load_prepare),
}
