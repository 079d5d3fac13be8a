"""The `backtest` operation kind: a trained model (or its strategy's rule) over stored bars.

Registered in `BacktestConfig.ready()` (`docs/architecture.md` §3). It runs here unless an
agent is asked for (`stays_local`): the model file and the bars are here. On an agent with the
`training` role (it has torch), the model file and the bar window the run reads travel as
content-addressed inputs (`model`, `SYMBOL:TF`, zstd Parquet) and the agent runs the same
`run_backtest` on them; the result and the trade records come back through the usual pull.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse

from backtest.params import check_request, model_id_of
from backtest.runner import default_load_bars, load_window, run_backtest
from marketdata.store import SeriesNotFound, bytes_to_frame, frame_to_bytes
from operations.bridge import ProgressBridge
from operations.exceptions import InvalidInput
from operations.kinds import (
    Inputs,
    Launch,
    OperationKind,
    RemoteInput,
    RemotePayload,
    Rerun,
    RunColumn,
)
from operations.local import WorkContext
from operations.models import Operation
from operations.readable import percent

OPERATION_TYPE = "backtest"
MODEL_INPUT = "model"
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


def _prepare(metadata: dict[str, Any], inputs: Inputs | None) -> Launch:
    metadata = checked_metadata(metadata)

    if inputs is None:

        def work(ctx: WorkContext) -> dict[str, Any]:
            return run_backtest(ctx)

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
                return run_backtest(ctx, load_bars=load_bars, model_path=path)

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
    return RemotePayload(params=dict(metadata), inputs=inputs)


def _rerun(metadata: dict[str, Any]) -> Rerun:
    checked = checked_metadata(metadata)
    placement = metadata.get("placement") if isinstance(metadata.get("placement"), dict) else {}
    return Rerun(
        metadata={k: v for k, v in checked.items() if k != "placement"},
        execution_mode=placement.get("execution_mode") or "local",
        agent=placement.get("agent") or None,
        strategy_name=str(checked["strategy"]),
        input_series=[f"{checked['symbol']}:{checked['timeframe']}"],
    )


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
