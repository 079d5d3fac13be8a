"""The `backtest` operation kind: a trained model (or its strategy's rule) over stored bars.

Registered in `BacktestConfig.ready()` (`docs/architecture.md` §3). It runs here unless an
agent is asked for (`stays_local`): the model file and the bars are here. On an agent with the
`training` role (it has torch), the model file and the bar window the run reads travel as
content-addressed inputs (`model`, `SYMBOL:TF`, zstd Parquet) and the agent runs the same
`run_backtest` on them; the result and the trade records come back through the usual pull.

Resume (`docs/architecture.md` §15): a cancelled or failed run leaves its engine state at the
last chunk boundary (`backtest.state`) in `KTRDR_CHECKPOINTS_DIR/<operation>` (on an agent in its
artifacts folder's resume/, fetched when the resume is asked for); the resume hook starts the
same backtest from that bar, with the chunk records up to it copied, and the state travelling to
an agent as the input `engine_state`. A completed run removes its state.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse

from backtest.params import check_request, model_id_of
from backtest.runner import default_load_bars, load_window, run_backtest
from backtest.state import STATE_FILE, EngineStateError, engine_state_record
from marketdata.store import SeriesNotFound, bytes_to_frame, frame_to_bytes
from operations import places
from operations.bridge import ProgressBridge
from operations.conf import ktrdr_setting
from operations.exceptions import Conflict, InvalidInput, NotFound
from operations.kinds import (
    RESUME_FOLDER,
    Inputs,
    Launch,
    OperationKind,
    RemoteInput,
    RemotePayload,
    Rerun,
    RunColumn,
)
from operations.local import WorkContext
from operations.models import RESUME_METRICS_SEQ, RESUME_OF, Executor, Operation
from operations.readable import percent
from training.checkpoint import remove_checkpoints
from training.selectors import checkpoints_dir_for

OPERATION_TYPE = "backtest"
MODEL_INPUT = "model"
STATE_INPUT = "engine_state"
COST_KEYS = ("cost_bps", "cost_pips", "slippage_bps", "slippage_pips")
# What the service adds to the checked request: the model resolved to a file.
MODEL_KEYS = ("model_id", "model_label", "model_path", "model_sha256", "strategy", "timeframe")


class BacktestProgressBridge(ProgressBridge):
    """Its ETA is measured from the simulated chunks only (loading and scoring come first)."""

    __slots__ = ()
    eta_from_percentage = False


def checked_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """The stored request, checked again (an agent or a re-run trusts nothing stored)."""
    params = check_request(metadata)
    model_id_of(metadata.get("model_id"))
    for key in MODEL_KEYS:
        if not isinstance(metadata.get(key), (str, int)) or metadata.get(key) in ("", None):
            raise InvalidInput(f"{key} is required", field=key)
    if params["symbol"] is None:
        raise InvalidInput("symbol is required", field="symbol")
    extra = {k: metadata[k] for k in ("training_range",) if isinstance(metadata.get(k), dict)}
    return {**metadata, **params, **extra}


def _save_every() -> float:
    try:
        return max(float(ktrdr_setting("CHECKPOINT_EVERY_SECONDS", 300.0)), 0.0)
    except (TypeError, ValueError):
        return 300.0


def _checked_resume(resume: Any) -> dict[str, Any]:
    if not isinstance(resume, dict):
        raise InvalidInput("resume must be an object", field="resume")
    of, sha = resume.get("checkpoint_of"), resume.get("sha256")
    if not isinstance(of, str) or not of or "/" in of or of.startswith("."):
        raise InvalidInput("resume.checkpoint_of must be an operation id", field="resume")
    if not isinstance(sha, str) or len(sha) != 64:
        raise InvalidInput("resume.sha256 must be a sha256", field="resume")
    for key in ("bars_done", "bars_total"):
        if not isinstance(resume.get(key), int) or resume[key] < 0:
            raise InvalidInput(f"resume.{key} must be a count of bars", field="resume")
    return dict(resume)


def _prepare(metadata: dict[str, Any], inputs: Inputs | None) -> Launch:
    metadata = checked_metadata(metadata)
    if metadata.get("resume") is not None:
        metadata = {**metadata, "resume": _checked_resume(metadata["resume"])}

    def read_state(resume: dict[str, Any]) -> bytes:
        # Checked against resume["sha256"] by the runner before it is used.
        if inputs is not None:
            if STATE_INPUT not in inputs:
                raise InvalidInput("the engine state to resume from was not sent", field="inputs")
            return inputs[STATE_INPUT]
        return (checkpoints_dir_for(resume["checkpoint_of"]) / STATE_FILE).read_bytes()

    if inputs is None:

        def work(ctx: WorkContext) -> dict[str, Any]:
            folder = checkpoints_dir_for(ctx.operation_id)
            result = run_backtest(
                ctx, state_dir=folder, read_state=read_state, save_every_seconds=_save_every()
            )
            remove_checkpoints(folder)
            return result

    else:
        sent = inputs
        if MODEL_INPUT not in sent:
            raise InvalidInput("the model file was not sent", field="inputs")

        def load_bars(symbol: str, timeframe: str, start: Any, end: Any) -> Any:
            key = f"{symbol}:{timeframe}"
            if key not in sent:
                raise SeriesNotFound(symbol, timeframe)
            return bytes_to_frame(sent[key])

        def work(ctx: WorkContext) -> dict[str, Any]:
            # The sent model file (sha256-checked again on load) in a folder of this run.
            with tempfile.TemporaryDirectory(prefix="backtest-model-") as folder:
                path = Path(folder) / "model.pt"
                path.write_bytes(sent[MODEL_INPUT])
                state_dir = ctx.artifacts_dir / RESUME_FOLDER if ctx.artifacts_dir else None
                result = run_backtest(
                    ctx,
                    load_bars=load_bars,
                    model_path=path,
                    state_dir=state_dir,
                    read_state=read_state,
                    save_every_seconds=_save_every(),
                )
                if state_dir is not None:
                    remove_checkpoints(state_dir)
                return result

    work.__name__ = "run_backtest"
    return Launch(
        work=work,
        bridge=BacktestProgressBridge(),
        metadata=metadata,
        strategy_name=str(metadata["strategy"]),
        input_series=[f"{metadata['symbol']}:{metadata['timeframe']}"],
    )


def _remote_payload(metadata: dict[str, Any]) -> RemotePayload:
    """The request, the model file and the bar window the run reads (as a local run reads it)."""
    timeframes = [str(t) for t in metadata.get("timeframes") or [metadata["timeframe"]]]
    symbol = metadata["symbol"]
    frames, _first = load_window(
        default_load_bars, symbol, timeframes, metadata.get("start"), metadata.get("end")
    )
    inputs = [RemoteInput(key=MODEL_INPUT, data=Path(metadata["model_path"]).read_bytes())]
    inputs += [
        RemoteInput(key=f"{symbol}:{tf}", data=frame_to_bytes(frame), rows=len(frame))
        for tf, frame in frames.items()
    ]
    resume = metadata.get("resume")
    if isinstance(resume, dict):
        state = checkpoints_dir_for(resume["checkpoint_of"]) / STATE_FILE
        inputs.append(RemoteInput(key=STATE_INPUT, data=state.read_bytes()))
    return RemotePayload(params=dict(metadata), inputs=inputs)


# What a run records of its own lineage: a re-run (or a resume, which sets its own) starts
# without them.
LINEAGE_KEYS = frozenset({"placement", "resume", RESUME_METRICS_SEQ, RESUME_OF, "rerun_of"})


def _rerun(metadata: dict[str, Any]) -> Rerun:
    checked = checked_metadata(metadata)
    placement = metadata.get("placement") if isinstance(metadata.get("placement"), dict) else {}
    return Rerun(
        metadata={k: v for k, v in checked.items() if k not in LINEAGE_KEYS},
        execution_mode=placement.get("execution_mode") or "local",
        agent=placement.get("agent") or None,
        strategy_name=str(checked["strategy"]),
        input_series=[f"{checked['symbol']}:{checked['timeframe']}"],
    )


def _resume(op: Operation) -> Rerun:
    """The same backtest from the bar it reached: its saved engine state (409 when it left
    none, 400 when that fails its sha256), asked to run where the first one was."""
    plan = _rerun(dict(op.metadata or {}))
    folder = checkpoints_dir_for(op.operation_id)
    try:
        record = engine_state_record(folder)
        if record is None and op.executor != Executor.LOCAL:
            fetch = getattr(places.place_for(op), "fetch_resume_files", None)
            if fetch is not None:
                with contextlib.suppress(NotFound):  # the agent no longer knows the run
                    fetch(op, folder)
                record = engine_state_record(folder)
    except EngineStateError as exc:
        if exc.corrupted:
            raise InvalidInput(str(exc), field="checkpoint") from None
        raise Conflict(f"nothing to resume {op.operation_id} from: {exc}") from None
    if record is None:
        raise Conflict(
            f"nothing to resume {op.operation_id} from: it left no engine state (it stopped "
            "before its first chunk); re-run it instead",
            details={"operation_id": op.operation_id},
        )
    if int(record.get("chunk_bars", -1)) != int(plan.metadata.get("chunk_bars", -2)):
        raise Conflict(f"the saved state of {op.operation_id} is of other chunks")
    plan.metadata = {
        **plan.metadata,
        "resume": {
            "checkpoint_of": op.operation_id,
            **{k: record[k] for k in ("sha256", "size", "bars_done", "bars_total")},
        },
        RESUME_METRICS_SEQ: int(record["metrics_seq"]),
    }
    return plan


def _edit_url(metadata: dict[str, Any]) -> str:
    """The backtests page's form, pre-filled with this run's model, range, costs and sizing."""
    sizing = metadata.get("sizing") if isinstance(metadata.get("sizing"), dict) else {}
    query = {
        "model_id": metadata.get("model_id"),
        "symbol": metadata.get("symbol"),
        "start": str(metadata.get("start") or "")[:10],
        "end": str(metadata.get("end") or "")[:10],
        **{k: metadata.get(k) for k in COST_KEYS},
        "signals": metadata.get("signals"),
        "on_hold": metadata.get("on_hold"),
        "sizing": sizing.get("method"),
        "target_vol": sizing.get("target_vol") if sizing.get("method") == "volatility" else None,
    }
    query = {k: v for k, v in query.items() if v not in (None, "", 0, 0.0)}
    return f"{reverse('backtest:list')}?{urlencode(query)}#backtest-form"


def _describe_outcome(op: Operation) -> str:
    """ "total return 4.1 % · Sharpe 0.62 · 37 trades (in-sample)"; the bars done when cancelled."""
    summary = op.result_summary or {}
    figures = summary.get("figures") if isinstance(summary.get("figures"), dict) else {}
    if not figures:
        return ""
    parts = []
    if isinstance(figures.get("total_return"), (int, float)):
        parts.append(f"total return {percent(figures['total_return'])}")
    if isinstance(figures.get("sharpe"), (int, float)):
        parts.append(f"Sharpe {figures['sharpe']:.2f}")
    if isinstance(figures.get("trades"), int):
        parts.append(f"{figures['trades']} trades")
    said = " · ".join(parts)
    if (summary.get("in_sample") or {}).get("overlaps"):
        said += " (in-sample)"
    if op.status == "cancelled" and summary.get("bars_total"):
        said = f"after {summary.get('bars_done', 0):,} of {summary['bars_total']:,} bars: {said}"
    return said


RUN_COLUMNS = (
    RunColumn("total_return", "total return", percent=True),
    RunColumn("sharpe", "Sharpe", places=2),
    RunColumn("max_drawdown", "max drawdown", percent=True, default=False),
    RunColumn("trades", "trades", default=False),
    RunColumn("buy_and_hold_return", "buy-and-hold return", percent=True, default=False),
    RunColumn("rule_return", "rule baseline return", percent=True, default=False),
)


def _run_figures(summary: dict[str, Any]) -> dict[str, float]:
    figures = summary.get("figures") if isinstance(summary.get("figures"), dict) else {}
    baselines = summary.get("baselines") if isinstance(summary.get("baselines"), dict) else {}
    out = {k: figures.get(k) for k in ("total_return", "sharpe", "max_drawdown", "trades")}
    out["buy_and_hold_return"] = (baselines.get("buy_and_hold") or {}).get("total_return")
    out["rule_return"] = (baselines.get("rule") or {}).get("total_return")
    return {k: v for k, v in out.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _run_params(metadata: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "model_label",
        "symbol",
        "start",
        "end",
        "signals",
        "on_hold",
        "cost_bps",
        "cost_pips",
        "slippage_bps",
        "slippage_pips",
        "sizing",
    )
    return {k: metadata.get(k) for k in keys}


BACKTEST = OperationKind(
    name=OPERATION_TYPE,
    prepare=_prepare,
    capability=lambda _metadata: "training",
    stays_local=lambda _metadata: True,
    remote_payload=_remote_payload,
    rerun=_rerun,
    resume=_resume,
    edit_url=_edit_url,
    run_columns=RUN_COLUMNS,
    run_figures=_run_figures,
    run_params=_run_params,
    description="a trained model (or its strategy's rule) over stored bars, with costs",
    field_labels={
        "model_label": "Model",
        "model_id": "Model id",
        "cost_bps": "Cost (bps)",
        "cost_pips": "Cost (pips)",
        "slippage_bps": "Slippage (bps)",
        "slippage_pips": "Slippage (pips)",
        "on_hold": "On HOLD",
        "chunk_bars": "Bars per progress step",
        "training_range": "Model's training data",
    },
    hidden_fields=frozenset({"model_path", "model_sha256", "curve", "trades"}),
    describe_outcome=_describe_outcome,
)
