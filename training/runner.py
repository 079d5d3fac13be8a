"""The worker function of a training operation: `run_training(ctx)`.

Everything it needs comes from `ctx.metadata` (JSON: the resolved strategy, symbols, timeframes,
range, seed), so a host agent runs the same function with the metadata it was sent.
Checkpoints go to `checkpoint_dir` (default `KTRDR_CHECKPOINTS_DIR/<operation id>`) every
`KTRDR_CHECKPOINT_EVERY_EPOCHS` epochs or `KTRDR_CHECKPOINT_EVERY_SECONDS` seconds and on a
cancel; they are removed when the run completes and kept when it fails or is cancelled. A
resumed run (`metadata["resume"]`) starts from the checkpoint `read_checkpoint` gives it, which
it checks against the sha256 its metadata names (`docs/architecture.md` §15). The training
device is `metadata["device"]` when a caller set one, else this machine's
`KTRDR["TRAINING_DEVICE"]` (default `auto`: CUDA when present, else CPU) — an agent's own setting
applies to the runs it takes. It runs the
`TrainingExecutor` against the context's bridge and token, then registers the saved model. A
model file whose registration fails is removed, so no artifact exists without its row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model

from operations.conf import ktrdr_setting
from operations.local import WorkContext
from training import evaluation
from training.checkpoint import CheckpointPolicy, load_checkpoint_bytes, remove_checkpoints
from training.executor import LoadBars, TrainingExecutor
from training.selectors import checkpoints_dir_for
from training.services import trained_model_register

logger = logging.getLogger("training.runner")


def run_training(
    ctx: WorkContext,
    *,
    load_bars: LoadBars | None = None,
    models_dir: Path | None = None,
    user_id: int | None = None,
    checkpoint_dir: Path | None = None,
    read_checkpoint: Callable[[dict[str, Any]], bytes] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    meta = ctx.metadata
    device = meta.get("device") or ktrdr_setting("TRAINING_DEVICE", "auto")
    if checkpoint_dir is None:
        checkpoint_dir = checkpoints_dir_for(ctx.operation_id)
    resume_state = None
    resume = meta.get("resume")
    if isinstance(resume, dict):
        if read_checkpoint is None:
            raise ValueError("a resumed training needs its checkpoint")
        resume_state = load_checkpoint_bytes(
            read_checkpoint(resume), expected_sha256=resume["sha256"], name=resume["file"]
        )
    executor = TrainingExecutor(
        config=meta["strategy_config"],
        symbols=meta["symbols"],
        timeframes=meta["timeframes"],
        start=meta.get("start"),
        end=meta.get("end"),
        seed=meta.get("seed"),
        models_dir=Path(models_dir or ktrdr_setting("MODELS_DIR")),
        run_id=ctx.operation_id,
        load_bars=load_bars,
        bridge=ctx.bridge,  # type: ignore[arg-type]
        token=ctx.token,
        log=logging.getLogger("training.executor"),
        device=device,
        min_free_bytes=int(float(ktrdr_setting("TRAINING_MIN_FREE_MB", 64.0)) * 1_000_000),
        warning_thresholds=warning_thresholds(),
        checkpoint_dir=checkpoint_dir,
        checkpoint_policy=checkpoint_policy(clock),
        resume_state=resume_state,
        metrics_offset=int(meta.get("resume_metrics_seq") or 0),
        clock=clock,
    )
    result = executor.run()
    # Completed: nothing will resume from it (a failed or cancelled run keeps its last one).
    remove_checkpoints(checkpoint_dir)
    if isinstance(resume, dict):
        result["resumed"] = {k: resume.get(k) for k in ("of", "epoch", "file", "sha256")}
    artifact = result["model"]
    if artifact.get("artifact_path"):
        owner = user_id if user_id is not None else ctx.user_id
        result["model"] = {**artifact, **_register(ctx, artifact, result, owner)}
    return result


def checkpoint_policy(clock: Callable[[], float] = time.monotonic) -> CheckpointPolicy:
    """The cadence from the settings (a bad value falls back to the default)."""
    try:
        epochs = max(int(ktrdr_setting("CHECKPOINT_EVERY_EPOCHS", 10)), 0)
    except (TypeError, ValueError):
        epochs = 10
    try:
        seconds = max(float(ktrdr_setting("CHECKPOINT_EVERY_SECONDS", 300.0)), 0.0)
    except (TypeError, ValueError):
        seconds = 300.0
    return CheckpointPolicy(every_epochs=epochs, every_seconds=seconds, clock=clock)


def warning_thresholds() -> dict[str, Any]:
    """The warnings' thresholds from the settings, bounded (a bad value falls back to the
    default rather than silencing a warning or failing the run)."""

    def bounded(name: str, default: float, low: float, high: float) -> float:
        try:
            value = float(ktrdr_setting(name, default))
        except (TypeError, ValueError):
            return default
        return value if low <= value <= high else default

    return {
        "min_class_share": bounded("TRAINING_MIN_CLASS_SHARE", evaluation.MIN_CLASS_SHARE, 0, 1),
        "min_class_samples": int(
            bounded("TRAINING_MIN_CLASS_SAMPLES", evaluation.MIN_CLASS_SAMPLES, 0, 1e9)
        ),
    }


def _register(
    ctx: WorkContext, artifact: dict[str, Any], result: dict[str, Any], user_id: int | None
) -> dict[str, Any]:
    path = Path(artifact["artifact_path"])
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    try:
        model = trained_model_register(
            artifact_path=path,
            sha256=artifact["sha256"],
            operation_id=ctx.operation_id,
            result=result,
            user=user,
        )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return {"id": model.pk, "version": model.version, "label": str(model)}
