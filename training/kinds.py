"""The `training` operation kind: how a training run runs here, travels to an agent, and comes back.

Registered in `TrainingConfig.ready()` (`docs/architecture.md` §3). The run is the same
`run_training` everywhere; only where its bars come from and where its model goes differ:

* here: bars from this process's store, the model saved under MODELS_DIR and registered;
* on an agent: the resolved strategy and its input bars travel with the start (zstd Parquet,
  content-addressed), the model is left as the artifact `model.pt`, and the backend registers
  it when the run completed and the file was fetched and verified.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse

from marketdata.store import SeriesNotFound, bytes_to_frame, frame_to_bytes, read_bars
from operations.conf import ktrdr_setting
from operations.exceptions import InvalidInput, NotFound
from operations.kinds import (
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
from operations.models import Operation
from operations.readable import percent
from training.bridge import TrainingProgressBridge
from training.device import cuda_available
from training.errors import StrategyError
from training.runner import run_training
from training.services import trained_model_register
from training.strategy import validate_strategy

OPERATION_TYPE = "training"
MODEL_ARTIFACT = "model.pt"
# What of a training operation's metadata the run needs (the rest is the backend's record).
RUN_KEYS = ("strategy", "strategy_config", "symbols", "timeframes", "start", "end", "seed")
# What a re-run starts from: the run's inputs and where it was asked to run (not where it ran).
RERUN_KEYS = (
    *RUN_KEYS,
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
    return {**metadata, "strategy_config": config}


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

    def work(ctx: WorkContext) -> dict[str, Any]:
        if ctx.artifacts_dir is None:
            return run_training(ctx, load_bars=load_bars)
        folder = ctx.artifacts_dir
        result = run_training(ctx, load_bars=load_bars, models_dir=folder / "_models")
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
    return RemotePayload(params={k: metadata.get(k) for k in RUN_KEYS}, inputs=inputs)


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
        return f"after epoch {done}{of} (no model saved)"
    return ""


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


def _local_unavailable(_metadata: dict[str, Any], require_gpu: bool) -> str:
    if require_gpu and not cuda_available():
        return "this backend has no GPU"
    return ""


TRAINING = OperationKind(
    name=OPERATION_TYPE,
    prepare=_prepare,
    capability=lambda _metadata: "training",
    local_unavailable=_local_unavailable,
    prefers_gpu=True,
    remote_payload=_remote_payload,
    remote_completed=_remote_completed,
    rerun=_rerun,
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
