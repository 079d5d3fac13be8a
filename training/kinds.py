"""The `training` operation kind: how a training run runs here, travels to an agent, and comes back.

Registered in `TrainingConfig.ready()` (`docs/architecture.md` §3). The run is the same
`run_training` everywhere; only where its bars come from and where its model goes differ:

* here: bars from this process's store, the model saved under MODELS_DIR and registered;
* on an agent: the resolved strategy and its input bars travel with the start (zstd Parquet,
  content-addressed), the model is left as the artifact `model.pt`, and the backend registers
  it when the run completed and the file was fetched and verified.

Resume (`docs/architecture.md` §15): a failed or cancelled run goes on from its last checkpoint
as a new operation. Here the checkpoint is read from `KTRDR_CHECKPOINTS_DIR/<operation>`; a run
that was on an agent left it in its artifacts folder there (`RESUME_FOLDER`), and it is fetched to
that same folder here when the resume is asked for. A resume sent to an agent carries the
checkpoint as a content-addressed input (`checkpoint`), like the bars.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse

from marketdata.store import SeriesNotFound, bytes_to_frame, frame_to_bytes, read_bars
from operations import places
from operations.conf import ktrdr_setting
from operations.exceptions import Conflict, InvalidInput, NotFound
from operations.kinds import (
    RESUME_FOLDER,
    FetchedArtifact,
    Inputs,
    Launch,
    OperationKind,
    RemoteInput,
    RemotePayload,
    Rerun,
    RunColumn,
    RunCurve,
)
from operations.local import WorkContext
from operations.models import RESUME_METRICS_SEQ, Executor, Operation
from operations.readable import percent
from training.bridge import TrainingProgressBridge
from training.checkpoint import (
    CheckpointCorrupted,
    CheckpointError,
    checkpoint_record,
    verify_checkpoint,
)
from training.device import gpu_unavailable_here
from training.errors import StrategyError
from training.runner import run_training
from training.selectors import checkpoints_dir_for
from training.services import trained_model_register
from training.strategy import validate_strategy

OPERATION_TYPE = "training"
MODEL_ARTIFACT = "model.pt"
# What of a training operation's metadata the run needs (the rest is the backend's record).
RUN_KEYS = (
    "strategy",
    "strategy_config",
    "symbols",
    "timeframes",
    "start",
    "end",
    "seed",
    "resume",
    RESUME_METRICS_SEQ,
)
# The input a resume sent to an agent carries: the checkpoint file it goes on from.
CHECKPOINT_INPUT = "checkpoint"
# What a re-run starts from: the run's inputs and where it was asked to run (not where it ran).
RERUN_KEYS = (
    *RUN_KEYS[:7],
    "config_hash",
    "base_timeframe",
    "execution_mode",
    "agent",
    "require_gpu",
)


def _input_key(symbol: str, timeframe: str) -> str:
    return f"{symbol}:{timeframe}"


def _checked(metadata: dict[str, Any]) -> dict[str, Any]:
    """The run's parameters, validated again wherever it is prepared (an agent trusts nothing
    it is sent, not even from its backend)."""
    if not isinstance(metadata.get("strategy_config"), dict):
        raise InvalidInput("strategy_config is required", field="strategy_config")
    try:
        config = validate_strategy(metadata["strategy_config"])
    except StrategyError as exc:
        raise InvalidInput(f"invalid strategy: {exc}", field="strategy_config") from None
    for field in ("symbols", "timeframes"):
        value = metadata.get(field)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise InvalidInput(f"{field} must be a non-empty list of strings", field=field)
    resume = metadata.get("resume")
    if resume is not None:
        metadata = {**metadata, "resume": _checked_resume(resume)}
    offset = metadata.get(RESUME_METRICS_SEQ)
    if offset is not None and (type(offset) is not int or offset < 0):
        raise InvalidInput(f"{RESUME_METRICS_SEQ} must be a count", field=RESUME_METRICS_SEQ)
    return {**metadata, "strategy_config": config}


def _checked_resume(resume: Any) -> dict[str, Any]:
    """The checkpoint a resumed run starts from: the operation whose folder holds it, the file
    (a bare `checkpoint-eNNNNNN.pt` name) and its sha256."""
    if not isinstance(resume, dict):
        raise InvalidInput("resume must be an object", field="resume")
    of, name, sha = resume.get("checkpoint_of"), resume.get("file"), resume.get("sha256")
    if not isinstance(of, str) or not of or "/" in of or of.startswith("."):
        raise InvalidInput("resume.checkpoint_of must be an operation id", field="resume")
    if not isinstance(name, str) or not name.startswith("checkpoint-e") or "/" in name:
        raise InvalidInput("resume.file must name a checkpoint file", field="resume")
    if not isinstance(sha, str) or len(sha) != 64:
        raise InvalidInput("resume.sha256 must be a sha256", field="resume")
    return dict(resume)


def _prepare(metadata: dict[str, Any], inputs: Inputs | None) -> Launch:
    metadata = _checked(metadata)
    load_bars = None
    if inputs is not None:
        sent = inputs

        def load_bars(symbol: str, timeframe: str, start: Any, end: Any) -> Any:
            key = _input_key(symbol, timeframe)
            if key not in sent:
                raise NotFound(f"no bars were sent for {symbol} {timeframe}")
            return bytes_to_frame(sent[key])

    def read_checkpoint(resume: dict[str, Any]) -> bytes:
        # Checked against resume["sha256"] by the runner before it is loaded.
        if inputs is not None:
            if CHECKPOINT_INPUT not in inputs:
                raise NotFound("the checkpoint to resume from was not sent")
            return inputs[CHECKPOINT_INPUT]
        return (checkpoints_dir_for(resume["checkpoint_of"]) / resume["file"]).read_bytes()

    def work(ctx: WorkContext) -> dict[str, Any]:
        if ctx.artifacts_dir is None:
            return run_training(ctx, load_bars=load_bars, read_checkpoint=read_checkpoint)
        folder = ctx.artifacts_dir
        result = run_training(
            ctx,
            load_bars=load_bars,
            models_dir=folder / "_models",
            checkpoint_dir=folder / RESUME_FOLDER,
            read_checkpoint=read_checkpoint,
        )
        model = result.get("model") or {}
        if model.get("artifact_path"):
            # The executor's own layout stays (this process's model row points at it); a link at
            # the top of the folder makes it the operation's artifact without copying it.
            _link_or_copy(Path(model["artifact_path"]), folder / MODEL_ARTIFACT)
            result["model"] = {**model, "artifact_name": MODEL_ARTIFACT}
        return result

    work.__name__ = "run_training"
    symbols, timeframes = metadata["symbols"], metadata["timeframes"]
    return Launch(
        work=work,
        bridge=TrainingProgressBridge(),
        metadata=metadata,
        strategy_name=metadata["strategy_config"]["name"],
        input_series=[_input_key(s, t) for s in symbols for t in timeframes],
    )


def _link_or_copy(source: Path, target: Path) -> None:
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _remote_payload(metadata: dict[str, Any]) -> RemotePayload:
    """The run's parameters and the stored bars it will read, exactly as a local run reads them."""
    inputs = []
    for symbol in metadata["symbols"]:
        for timeframe in metadata["timeframes"]:
            try:
                frame = read_bars(
                    symbol, timeframe, start=metadata.get("start"), end=metadata.get("end")
                )
            except SeriesNotFound:
                continue  # the executor resamples a missing higher timeframe, here and there
            inputs.append(
                RemoteInput(
                    key=_input_key(symbol, timeframe), data=frame_to_bytes(frame), rows=len(frame)
                )
            )
    resume = metadata.get("resume")
    if isinstance(resume, dict):
        folder = checkpoints_dir_for(resume["checkpoint_of"])
        data = (folder / resume["file"]).read_bytes()
        inputs.append(RemoteInput(key=CHECKPOINT_INPUT, data=data))
    params = {k: metadata.get(k) for k in RUN_KEYS if k in metadata}
    return RemotePayload(params=params, inputs=inputs)


def _remote_completed(
    op: Operation, summary: dict[str, Any], fetched: list[FetchedArtifact]
) -> dict[str, Any]:
    """Register the fetched, verified `model.pt` as the next version of its strategy.

    `trained_model_register` loads the file with torch (seconds to import): this runs in the
    agent place's background results fetch, never on a request thread (docs/agents.md,
    *Remote operations*)."""
    model = next((f for f in fetched if f.name == MODEL_ARTIFACT), None)
    if model is None:
        return summary
    meta = op.metadata or {}
    base_tf = (meta.get("timeframes") or ["model"])[0]
    strategy = meta.get("strategy") or op.strategy_name or "strategy"
    dest = Path(ktrdr_setting("MODELS_DIR")) / strategy / base_tf / f"{op.operation_id}.pt"
    dest.parent.mkdir(parents=True, exist_ok=True)
    if model.path != dest:
        # A link keeps the fetched artifact where the operation's artifact record points.
        _link_or_copy(model.path, dest)
    registered = trained_model_register(
        artifact_path=dest,
        sha256=model.sha256,
        operation_id=op.operation_id,
        result=summary,
        user=op.created_by,
    )
    summary["model"] = {
        **(summary.get("model") or {}),
        "artifact_path": str(dest),
        "sha256": model.sha256,
        "size_bytes": model.size,
        "id": registered.pk,
        "version": registered.version,
        "label": str(registered),
    }
    return summary


def _describe_outcome(op: Operation) -> str:
    """ "model EURUSD-mlp 1h v3 saved · test accuracy 33.7 %"; "after epoch 4 of 10 (no model
    saved)" for a cancelled run."""
    summary = op.result_summary or {}
    if op.status == "completed":
        model = summary.get("model") if isinstance(summary.get("model"), dict) else {}
        said = f"model {model['label']} saved" if model.get("label") else ""
        figures = (summary.get("metrics") or {}).get("test") or {}
        test = figures.get("accuracy")
        if isinstance(test, (int, float)):
            shown = f"test accuracy {percent(test)}"
            majority = figures.get("majority_rate")
            if isinstance(majority, (int, float)):
                # The baseline beside it: always predicting the split's most frequent class.
                shown += (
                    f" (majority class {percent(majority)}, "
                    f"lift {100.0 * (test - majority):+.1f} pp)"
                )
            said = f"{said} · {shown}" if said else shown
        warnings = summary.get("warnings")
        if isinstance(warnings, list) and warnings:
            said += f" · {len(warnings)} warning{'s' if len(warnings) != 1 else ''}"
        return said
    if op.status == "cancelled":
        done = summary.get("epochs_completed")
        total = ((op.progress or {}).get("context") or {}).get("epochs_total")
        if not isinstance(total, int):
            config = (op.metadata or {}).get("strategy_config") or {}
            total = ((config.get("model") or {}).get("training") or {}).get("epochs")
        if not isinstance(done, int):
            return ""
        if done == 0:
            return "before the first epoch finished (no model saved)"
        of = f" of {total}" if isinstance(total, int) else ""
        return f"after epoch {done}{of} (no model saved{_resumable_from(summary)})"
    return ""


def _resumable_from(summary: dict[str, Any]) -> str:
    """ "; resumable from epoch 110" when the run left a checkpoint, else ""."""
    checkpoint = summary.get("checkpoint")
    epoch = checkpoint.get("epoch") if isinstance(checkpoint, dict) else None
    return f"; resumable from epoch {epoch}" if isinstance(epoch, int) and epoch > 0 else ""


def _rerun(metadata: dict[str, Any]) -> Rerun:
    """The same resolved strategy (as it was then, not as its file reads now), data, range and
    seed, asked to run where the first run was asked to."""
    checked = _checked({k: metadata[k] for k in RERUN_KEYS if k in metadata})
    symbols, timeframes = checked["symbols"], checked["timeframes"]
    return Rerun(
        metadata=checked,
        execution_mode=checked.get("execution_mode") or "auto",
        agent=checked.get("agent") or None,
        require_gpu=bool(checked.get("require_gpu")),
        strategy_name=checked["strategy_config"]["name"],
        input_series=[_input_key(s, t) for s in symbols for t in timeframes],
    )


def _resume(op: Operation) -> Rerun:
    """The same run, going on from its last checkpoint (or, when it wrote none of its own, from
    the checkpoint it was itself resumed from), where the first run was asked to run.

    409 when there is no checkpoint; 400 naming it when its sha256 does not match."""
    plan = _rerun(dict(op.metadata or {}))
    folder = checkpoints_dir_for(op.operation_id)
    record = None
    if op.executor != Executor.LOCAL:
        record = _fetch_agent_checkpoint(op, folder)
    try:
        if record is None and checkpoint_record(folder) is not None:
            record = verify_checkpoint(folder)
            checkpoint_of = op.operation_id
        elif record is not None:
            checkpoint_of = op.operation_id
        else:
            earlier = (op.metadata or {}).get("resume")
            if not isinstance(earlier, dict):
                raise Conflict(
                    f"nothing to resume {op.operation_id} from: it left no checkpoint (it "
                    "stopped before its first one was written); re-run it instead",
                    details={"operation_id": op.operation_id},
                )
            earlier = _checked_resume(earlier)
            checkpoint_of = earlier["checkpoint_of"]
            record = verify_checkpoint(checkpoints_dir_for(checkpoint_of))
            if record["sha256"] != earlier["sha256"]:
                raise CheckpointCorrupted(
                    f"checkpoint corrupted: sha256 mismatch for {earlier['file']} of "
                    f"{checkpoint_of} (resumed from {earlier['sha256']}, now {record['sha256']})"
                )
    except CheckpointCorrupted as exc:
        raise InvalidInput(str(exc), field="checkpoint") from None
    except CheckpointError as exc:
        raise Conflict(
            f"nothing to resume {op.operation_id} from: {exc}",
            details={"operation_id": op.operation_id},
        ) from None
    resume = {
        "checkpoint_of": checkpoint_of,
        **{k: record[k] for k in ("file", "sha256", "size", "epoch", "metrics_seq")},
    }
    plan.metadata = {
        **plan.metadata,
        "resume": resume,
        RESUME_METRICS_SEQ: int(record["metrics_seq"]),
    }
    return plan


def _fetch_agent_checkpoint(op: Operation, folder: Path) -> dict[str, Any] | None:
    """Bring the checkpoint a run on an agent left to `folder` (once: a fetched, verified one is
    used again); None when the agent has none."""
    try:
        if checkpoint_record(folder) is not None:
            return verify_checkpoint(folder)
    except CheckpointCorrupted:
        pass  # fetched again below
    place = places.place_for(op)
    fetch = getattr(place, "fetch_resume_files", None)
    if fetch is None:
        return None
    try:
        fetched = fetch(op, folder)
    except NotFound:
        return None
    return verify_checkpoint(folder) if fetched else None


def _edit_url(metadata: dict[str, Any]) -> str | None:
    """The strategy's training form, pre-filled with this run's data, range and placement."""
    strategy = metadata.get("strategy")
    if not isinstance(strategy, str) or not strategy:
        return None
    query = {
        "symbols": ",".join(metadata.get("symbols") or []),
        "timeframes": ",".join(metadata.get("timeframes") or []),
        "start": str(metadata.get("start") or "")[:10],
        "end": str(metadata.get("end") or "")[:10],
        "execution_mode": metadata.get("execution_mode") or "",
    }
    url = reverse("training:strategy-detail", args=[strategy])
    return f"{url}?{urlencode({k: v for k, v in query.items() if v})}#start-training"


RUN_COLUMNS = (
    RunColumn("best_val_accuracy", "best validation accuracy", percent=True),
    RunColumn("test_accuracy", "test accuracy", percent=True),
    RunColumn("test_majority_rate", "test majority rate", percent=True, default=False),
    RunColumn("test_accuracy_lift", "test accuracy lift", percent=True, default=False),
    RunColumn("test_log_loss_lift", "test log-loss lift", default=False),
    RunColumn("final_loss", "final loss"),
    RunColumn("test_loss", "test loss", default=False),
    RunColumn("epochs_run", "epochs", default=False),
)
RUN_CURVES = (
    RunCurve("val_accuracy", "Validation accuracy", "epoch", "epoch", percent=True),
    RunCurve("train_accuracy", "Train accuracy", "epoch", "epoch", percent=True),
    RunCurve("val_loss", "Validation loss", "epoch", "epoch"),
    RunCurve("train_loss", "Train loss", "epoch", "epoch"),
)


def _run_figures(summary: dict[str, Any]) -> dict[str, float]:
    """The figures of a run's result (a cancelled or failed run keeps its epochs' figures)."""
    training = summary.get("training") if isinstance(summary.get("training"), dict) else {}
    history = [h for h in training.get("history") or [] if isinstance(h, dict)]
    test = ((summary.get("metrics") or {}).get("test")) or {}
    figures: dict[str, Any] = {
        "test_accuracy": test.get("accuracy"),
        "test_loss": test.get("loss"),
        "test_majority_rate": test.get("majority_rate"),
        "test_accuracy_lift": test.get("accuracy_lift"),
        "test_log_loss_lift": test.get("log_loss_lift"),
        "epochs_run": training.get("epochs_run", len(history) or None),
    }
    accuracies = [
        h["val_accuracy"] for h in history if isinstance(h.get("val_accuracy"), (int, float))
    ]
    if accuracies:
        figures["best_val_accuracy"] = max(accuracies)
    if history:
        figures["final_loss"] = history[-1].get("train_loss")
    return {k: v for k, v in figures.items() if isinstance(v, (int, float))}


def _run_params(metadata: dict[str, Any]) -> dict[str, Any]:
    """What a run was asked for, with the strategy it trained (compared key by key)."""
    params = {
        k: metadata.get(k)
        for k in ("strategy", "symbols", "timeframes", "start", "end", "seed", "config_hash")
    }
    config = metadata.get("strategy_config")
    if isinstance(config, dict):
        params.update({f"strategy.{k}": v for k, v in config.items() if k != "name"})
    return params


TRAINING = OperationKind(
    name=OPERATION_TYPE,
    prepare=_prepare,
    capability=lambda _metadata: "training",
    local_unavailable=gpu_unavailable_here,
    prefers_gpu=True,
    remote_payload=_remote_payload,
    remote_completed=_remote_completed,
    rerun=_rerun,
    resume=_resume,
    edit_url=_edit_url,
    run_columns=RUN_COLUMNS,
    run_figures=_run_figures,
    run_curves=RUN_CURVES,
    run_params=_run_params,
    description="train a strategy's neural network on stored bars",
    field_labels={
        "config_hash": "Strategy hash",
        "base_timeframe": "Base timeframe",
        "seed": "Random seed",
        "require_gpu": "GPU required",
        "epochs_total": "Epochs planned",
        "batches_per_epoch": "Batches per epoch",
        "train_samples": "Training samples",
        "patience_left": "Early-stopping patience left",
        "last_epoch": "Last finished epoch",
        "val_loss": "Validation loss",
        "val_accuracy": "Validation accuracy",
        "train_accuracy": "Training accuracy",
        "train_loss": "Training loss",
    },
    # The resolved strategy is long; the strategy page shows it.
    hidden_fields=frozenset({"strategy_config", "history"}),
    describe_outcome=_describe_outcome,
)
