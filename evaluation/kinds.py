"""The `evaluation` operation kind: walk-forward evaluation of a strategy over folds and seeds.

Registered in `EvaluationConfig.ready()` (`docs/architecture.md` §3). Like training it needs
torch (`capability` "training") and prefers a GPU agent in `auto`; here otherwise. On an agent
the resolved strategy and the request travel as the params, the bars it reads as
content-addressed inputs (`SYMBOL:TF`, zstd Parquet), and the agent runs the same
`run_evaluation` on them; the result and the `fold` records come back through the usual pull,
no artifact (fold models are not kept).

`resume_metadata(op)` builds, from a cancelled or failed evaluation, the metadata of a run that
carries its finished folds (`prior_folds`) and runs only the others; the `resume` hook starts
it (`operations.execution.operation_resume`: the page's Resume button, `POST …/resume/`,
`ops resume`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.urls import reverse

from evaluation.bridge import EvaluationProgressBridge
from evaluation.params import check_request
from evaluation.runner import run_evaluation
from marketdata.store import SeriesNotFound, bytes_to_frame, frame_to_bytes, read_bars
from operations.exceptions import Conflict, InvalidInput, NotFound
from operations.kinds import (
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
from training.device import gpu_unavailable_here
from training.errors import StrategyError
from training.strategy import config_hash, validate_strategy

OPERATION_TYPE = "evaluation"
# The request as checked (`evaluation.params.check_request`) plus what the service resolved.
REQUEST_KEYS = (
    "symbol",
    "timeframe",
    "timeframes",
    "start",
    "end",
    "folds",
    "scheme",
    "train_bars",
    "test_bars",
    "test_fraction",
    "purge_bars",
    "embargo_bars",
    "seeds",
    "epochs",
    "bootstrap",
)
RUN_KEYS = ("strategy", "strategy_config", "config_hash", *REQUEST_KEYS, "prior_folds")
RESUMABLE = ("cancelled", "failed")


def _input_key(symbol: str, timeframe: str) -> str:
    return f"{symbol}:{timeframe}"


def checked_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """The stored request, checked again (an agent, a re-run or a resume trusts nothing)."""
    if not isinstance(metadata, dict) or not isinstance(metadata.get("strategy_config"), dict):
        raise InvalidInput("strategy_config is required", field="strategy_config")
    try:
        config = validate_strategy(metadata["strategy_config"])
    except StrategyError as exc:
        raise InvalidInput(f"invalid strategy: {exc}", field="strategy_config") from None
    params = check_request(metadata, config)
    prior = metadata.get("prior_folds")
    if prior is not None and not isinstance(prior, list):
        raise InvalidInput("prior_folds must be a list of fold results", field="prior_folds")
    if isinstance(prior, list) and len(prior) > params["folds"] * len(params["seeds"]):
        raise InvalidInput("prior_folds holds more results than the plan", field="prior_folds")
    out = {
        **metadata,
        **params,
        "strategy": config["name"],
        "strategy_config": config,
        "config_hash": config_hash(config),
    }
    if prior is None:
        out.pop("prior_folds", None)
    return out


def _prepare(metadata: dict[str, Any], inputs: Inputs | None) -> Launch:
    metadata = checked_metadata(metadata)
    load_bars = None
    if inputs is not None:
        sent = inputs

        def load_bars(symbol: str, timeframe: str, start: Any, end: Any) -> Any:
            key = _input_key(symbol, timeframe)
            if key not in sent:
                raise NotFound(f"no bars were sent for {symbol} {timeframe}")
            return bytes_to_frame(sent[key])

    def work(ctx: WorkContext) -> dict[str, Any]:
        return run_evaluation(ctx, load_bars=load_bars)

    work.__name__ = "run_evaluation"
    return Launch(
        work=work,
        bridge=EvaluationProgressBridge(),
        metadata=metadata,
        strategy_name=metadata["strategy"],
        input_series=[_input_key(metadata["symbol"], metadata["timeframe"])],
    )


def _remote_payload(metadata: dict[str, Any]) -> RemotePayload:
    """The run's parameters and the stored bars it reads, exactly as a local run reads them."""
    inputs = []
    symbol = metadata["symbol"]
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
    params = {k: metadata[k] for k in RUN_KEYS if k in metadata}
    return RemotePayload(params=params, inputs=inputs)


def resume_metadata(operation: Operation) -> dict[str, Any]:
    """The metadata of a run that carries `operation`'s finished folds (`prior_folds`) and
    runs only the rest: the same request, checked again. Only a cancelled or failed
    evaluation resumes; one that finished nothing starts from the beginning."""
    if operation.operation_type != OPERATION_TYPE:
        raise InvalidInput(f"{operation.operation_id} is not an evaluation", field="operation_id")
    if operation.status not in RESUMABLE:
        raise InvalidInput(
            f"only a cancelled or failed evaluation resumes ({operation.operation_id} is "
            f"{operation.status})",
            field="operation_id",
        )
    stored = operation.metadata or {}
    keys = (*RUN_KEYS, "execution_mode", "agent", "require_gpu")
    metadata = {k: stored[k] for k in keys if k in stored}
    summary = operation.result_summary if isinstance(operation.result_summary, dict) else {}
    finished = summary.get("fold_results")
    finished = finished if isinstance(finished, list) else []
    carried = {(r.get("fold"), r.get("seed")): r for r in stored.get("prior_folds") or []}
    carried.update({(r.get("fold"), r.get("seed")): r for r in finished if isinstance(r, dict)})
    metadata["prior_folds"] = list(carried.values())
    return checked_metadata(metadata)


def _resume(operation: Operation) -> Rerun:
    """The `resume` hook (`operations.execution.operation_resume`): the same evaluation,
    carrying the folds it finished, asked to run where the first one was; 409 when it finished
    none (a re-run does the same)."""
    metadata = resume_metadata(operation)
    if not metadata["prior_folds"]:
        raise Conflict(
            f"nothing to resume {operation.operation_id} from: it finished no fold × seed run; "
            "re-run it instead",
            details={"operation_id": operation.operation_id},
        )
    return Rerun(
        metadata=metadata,
        execution_mode=metadata.get("execution_mode") or "auto",
        agent=metadata.get("agent") or None,
        require_gpu=bool(metadata.get("require_gpu")),
        strategy_name=metadata["strategy"],
        input_series=[_input_key(metadata["symbol"], metadata["timeframe"])],
    )


def _rerun(metadata: dict[str, Any]) -> Rerun:
    """The same resolved strategy, data, plan and seeds, asked to run where the first was
    asked to; carried folds are not carried again (a re-run runs every fold)."""
    keys = (*RUN_KEYS, "execution_mode", "agent", "require_gpu")
    checked = checked_metadata(
        {k: metadata[k] for k in keys if k in metadata and k != "prior_folds"}
    )
    return Rerun(
        metadata=checked,
        execution_mode=checked.get("execution_mode") or "auto",
        agent=checked.get("agent") or None,
        require_gpu=bool(checked.get("require_gpu")),
        strategy_name=checked["strategy"],
        input_series=[_input_key(checked["symbol"], checked["timeframe"])],
    )


def _edit_url(metadata: dict[str, Any]) -> str:
    """The evaluations page's form, pre-filled with this run's request."""
    seeds = metadata.get("seeds") if isinstance(metadata.get("seeds"), list) else []
    query = {
        "strategy": metadata.get("strategy"),
        "symbol": metadata.get("symbol"),
        "start": str(metadata.get("start") or "")[:10],
        "end": str(metadata.get("end") or "")[:10],
        "folds": metadata.get("folds"),
        "scheme": metadata.get("scheme"),
        "train_bars": metadata.get("train_bars"),
        "test_bars": metadata.get("test_bars"),
        "embargo_bars": metadata.get("embargo_bars"),
        "purge_bars": metadata.get("purge_bars"),
        "seeds": ",".join(str(s) for s in seeds),
        "epochs": metadata.get("epochs"),
    }
    query = {k: v for k, v in query.items() if v not in (None, "")}
    return f"{reverse('evaluation:list')}?{urlencode(query)}#evaluation-form"


def _points(value: Any) -> str:
    return f"{100.0 * value:+.1f}"


def _describe_outcome(op: Operation) -> str:
    """ "lift +0.8 pt [-1.2, +2.9] over 5 folds × 3 seeds"; the folds done when cancelled."""
    summary = op.result_summary if isinstance(op.result_summary, dict) else {}
    agg = summary.get("aggregate") if isinstance(summary.get("aggregate"), dict) else {}
    lift = ((agg.get("ci") or {}).get("accuracy_lift")) or {}
    if not isinstance(lift.get("mean"), (int, float)):
        return ""
    said = f"lift {_points(lift['mean'])} pt"
    if isinstance(lift.get("low"), (int, float)) and isinstance(lift.get("high"), (int, float)):
        said += f" [{_points(lift['low'])}, {_points(lift['high'])}]"
    folds, seeds = agg.get("folds"), agg.get("seeds")
    said += (
        f" over {folds} fold{'s' if folds != 1 else ''} × {seeds} seed{'s' if seeds != 1 else ''}"
    )
    if summary.get("partial"):
        said = f"after {summary.get('units_done')} of {summary.get('units_total')} runs: {said}"
    return said.replace("-", "\u2212")


RUN_COLUMNS = (
    RunColumn("lift_mean", "mean accuracy lift", percent=True),
    RunColumn("lift_ci_low", "lift CI low", percent=True, default=False),
    RunColumn("lift_ci_high", "lift CI high", percent=True, default=False),
    RunColumn("log_loss_lift_mean", "mean log-loss lift", default=False),
    RunColumn("accuracy_mean", "mean accuracy", percent=True, default=False),
    RunColumn("folds_done", "fold × seed runs", default=False),
)
RUN_CURVES = (RunCurve("accuracy_lift", "Accuracy lift per fold", "fold", "unit", percent=True),)


def _run_figures(summary: dict[str, Any]) -> dict[str, float]:
    agg = summary.get("aggregate") if isinstance(summary.get("aggregate"), dict) else {}
    ci = agg.get("ci") or {}
    lift, ll = ci.get("accuracy_lift") or {}, ci.get("log_loss_lift") or {}
    out = {
        "lift_mean": lift.get("mean"),
        "lift_ci_low": lift.get("low"),
        "lift_ci_high": lift.get("high"),
        "log_loss_lift_mean": ll.get("mean"),
        "accuracy_mean": ((agg.get("figures") or {}).get("accuracy") or {}).get("mean"),
        "folds_done": summary.get("units_done"),
    }
    return {k: v for k, v in out.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _run_params(metadata: dict[str, Any]) -> dict[str, Any]:
    return {
        k: metadata.get(k)
        for k in ("strategy", "config_hash", *REQUEST_KEYS)
        if k not in ("timeframes", "bootstrap")
    }


EVALUATION = OperationKind(
    name=OPERATION_TYPE,
    prepare=_prepare,
    capability=lambda _metadata: "training",
    local_unavailable=gpu_unavailable_here,
    prefers_gpu=True,
    remote_payload=_remote_payload,
    rerun=_rerun,
    resume=_resume,
    edit_url=_edit_url,
    run_columns=RUN_COLUMNS,
    run_figures=_run_figures,
    run_curves=RUN_CURVES,
    run_params=_run_params,
    description="walk-forward evaluation of a strategy: folds × seeds, purged and embargoed",
    field_labels={
        "config_hash": "Strategy hash",
        "folds": "Folds",
        "scheme": "Fold scheme",
        "train_bars": "Training rows per fold",
        "test_bars": "Test rows per fold",
        "test_fraction": "Test share per fold",
        "purge_bars": "Purge (rows before each test fold)",
        "embargo_bars": "Embargo (rows after each test fold)",
        "seeds": "Random seeds",
        "epochs": "Epochs (override)",
        "units_done": "Fold × seed runs done",
        "units_total": "Fold × seed runs planned",
        "models_saved": "Fold models saved",
        "require_gpu": "GPU required",
    },
    hidden_fields=frozenset({"strategy_config", "prior_folds", "plan", "fold_results"}),
    describe_outcome=_describe_outcome,
)
