"""The `backtest` operation kind: a trained model (or its strategy's rule) over stored bars.

Registered in `BacktestConfig.ready()` (`docs/architecture.md` §3). It runs where the model file
and the bars are: here (`stays_local`); `backtest.services` starts it with `execution_mode`
`local`. On an agent it would need the model and bars as inputs — not done yet (docs/research.md).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.urls import reverse

from backtest.params import check_request, model_id_of
from backtest.runner import run_backtest
from operations.bridge import ProgressBridge
from operations.exceptions import InvalidInput
from operations.kinds import Inputs, Launch, OperationKind, Rerun, RunColumn
from operations.local import WorkContext
from operations.models import Operation
from operations.readable import percent

OPERATION_TYPE = "backtest"
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


def _prepare(metadata: dict[str, Any], _inputs: Inputs | None) -> Launch:
    metadata = checked_metadata(metadata)

    def work(ctx: WorkContext) -> dict[str, Any]:
        return run_backtest(ctx)

    work.__name__ = "run_backtest"
    return Launch(
        work=work,
        bridge=BacktestProgressBridge(),
        metadata=metadata,
        strategy_name=str(metadata["strategy"]),
        input_series=[f"{metadata['symbol']}:{metadata['timeframe']}"],
    )


def _rerun(metadata: dict[str, Any]) -> Rerun:
    checked = checked_metadata(metadata)
    return Rerun(
        metadata={k: v for k, v in checked.items() if k != "placement"},
        execution_mode="local",
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
    stays_local=lambda _metadata: True,
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
