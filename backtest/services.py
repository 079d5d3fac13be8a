"""Every write of the backtest app: starting a backtest.

`backtest_start` checks the request (errors name the field), resolves the model to its file,
checks the range against the stored bars, and submits a `backtest` operation through the one
start path; it runs here, where the model file and the bars are, or on an agent when asked
(`backtest.kinds`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from backtest.kinds import OPERATION_TYPE, checked_metadata
from backtest.params import check_request, model_id_of
from marketdata import selectors as marketdata_selectors
from marketdata.store import read_index
from operations.conf import ktrdr_setting
from operations.exceptions import InvalidInput, NotFound
from operations.execution import operation_submit
from operations.models import Operation
from operations.placement import parse_execution_mode
from training import selectors as training_selectors


def backtest_metadata(*, body: dict[str, Any]) -> dict[str, Any]:
    """A backtest request checked and its model resolved: the operation's metadata.

    `body`: model_id (required), symbol (default: the model's first), start, end, cost_bps or
    cost_pips, slippage_bps or slippage_pips, pip_size, sizing, on_hold, signals, chunk_bars
    (`backtest.params.check_request`)."""
    if not isinstance(body, dict):
        raise InvalidInput("the request must be a JSON object")
    model_id = model_id_of(body.get("model_id"))
    params = check_request(body)
    try:
        model = training_selectors.trained_model_get(model_id=model_id)
        path = training_selectors.trained_model_file(model)
    except NotFound as exc:
        # In a request body an unknown model is bad input (400), not a missing resource.
        raise InvalidInput(exc.message, field="model_id") from None
    symbol = params["symbol"] or (model.symbols or [""])[0]
    try:
        marketdata_selectors.series_get(symbol=symbol, timeframe=model.timeframe)
    except NotFound:
        raise InvalidInput(
            f"no {symbol} {model.timeframe} bars are stored (load them first)", field="symbol"
        ) from None
    _check_bars_in_range(symbol, model.timeframe, params["start"], params["end"])
    data = (model.metadata or {}).get("data") or {}
    metadata = {
        **params,
        "symbol": symbol,
        "model_id": model.pk,
        "model_label": model.label,
        "model_path": str(path),
        "model_sha256": model.sha256,
        "strategy": model.strategy_name,
        "timeframe": model.timeframe,
        "timeframes": list(model.timeframes or [model.timeframe]),
        "training_range": {"start": data.get("start"), "end": data.get("end")},
    }
    return checked_metadata(metadata)


DEFAULT_MAX_BARS = 500_000


def _check_bars_in_range(symbol: str, timeframe: str, start: Any, end: Any) -> None:
    """The range holds stored bars, and at most KTRDR_BACKTEST_MAX_BARS (read from the
    timestamps only)."""
    most = int(ktrdr_setting("BACKTEST_MAX_BARS", DEFAULT_MAX_BARS))
    index = read_index(symbol, timeframe)
    lo = index.searchsorted(pd.Timestamp(start)) if start else 0
    hi = index.searchsorted(pd.Timestamp(end)) if end else len(index)
    if hi <= lo:
        stored = f"{index[0]:%Y-%m-%d} to {index[-1]:%Y-%m-%d}" if len(index) else "none"
        raise InvalidInput(
            f"no {symbol} {timeframe} bars are stored in that range (stored: {stored})",
            field="start",
        )
    if hi - lo > most:
        raise InvalidInput(
            f"the range holds {hi - lo:,} {timeframe} bars; a backtest takes at most {most:,}",
            field="end",
        )


def backtest_start(*, body: dict[str, Any], user: Any = None, detach: bool = False) -> Operation:
    """Validate a backtest request and start it; returns the new (pending) operation.

    It runs here unless `execution_mode` is `agent` or an `agent` is named (`auto` stays here
    too: the model and bars are here); the placement rules are `docs/architecture.md` §7."""
    metadata = backtest_metadata(body=body)
    agent = body.get("agent") or None
    if agent is not None and not isinstance(agent, str):
        raise InvalidInput("agent must be an agent's name", field="agent")
    mode = parse_execution_mode(body.get("execution_mode") or ("agent" if agent else "local"))
    return operation_submit(
        operation_type=OPERATION_TYPE,
        metadata=metadata,
        execution_mode=mode,
        agent=agent,
        user=user,
        strategy_name=metadata["strategy"],
        input_series=[f"{metadata['symbol']}:{metadata['timeframe']}"],
        detach=detach,
    )
