"""Every write of the evaluation app: starting a walk-forward evaluation.

`evaluation_start` checks the request (errors name the field), resolves the strategy, checks
that the stored bars can hold the fold plan, and submits an `evaluation` operation through the
one start path; the operations core decides where it runs (`docs/architecture.md` §7: a
training agent in `auto`, GPU ones first, else here). A cancelled or failed evaluation resumes
through `operations.execution.operation_resume` and the kind's `resume` hook, carrying its
finished folds (`evaluation.kinds.resume_metadata`).
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from evaluation.folds import plan_folds
from evaluation.kinds import OPERATION_TYPE, REQUEST_KEYS, checked_metadata
from marketdata import selectors as marketdata_selectors
from marketdata.store import read_index
from operations.exceptions import InvalidInput, NotFound
from operations.execution import operation_submit
from operations.models import Operation
from operations.placement import parse_execution_mode
from training import selectors as training_selectors

AGENT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Keys a start request may carry; anything else is refused naming it (a typo is not ignored).
BODY_KEYS = frozenset(
    {"strategy", *REQUEST_KEYS, "execution_mode", "agent", "require_gpu"} - {"timeframes"}
)


def evaluation_metadata(*, body: dict[str, Any]) -> dict[str, Any]:
    """An evaluation request checked and its strategy resolved: the operation's metadata."""
    if not isinstance(body, dict):
        raise InvalidInput("the request must be a JSON object")
    unknown = sorted(set(body) - BODY_KEYS)
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}", field=unknown[0])
    name = body.get("strategy")
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("strategy is required (a strategy's name)", field="strategy")
    try:
        found = training_selectors.strategy_get(name.strip())
    except NotFound as exc:
        raise InvalidInput(exc.message, field="strategy") from None
    if found.config is None:
        raise InvalidInput(f"strategy {name!r} is invalid: {found.error}", field="strategy")
    metadata = checked_metadata({**body, "strategy_config": found.config})
    _check_bars(metadata)
    return {
        k: v for k, v in metadata.items() if k not in ("execution_mode", "agent", "require_gpu")
    }


def _check_bars(meta: dict[str, Any]) -> None:
    """The stored bars exist and are enough for the plan before the warm-up (the run checks
    again after it, with the rows that remain)."""
    symbol, timeframe = meta["symbol"], meta["timeframe"]
    try:
        marketdata_selectors.series_get(symbol=symbol, timeframe=timeframe)
    except NotFound:
        raise InvalidInput(
            f"no {symbol} {timeframe} bars are stored (load them first)", field="symbol"
        ) from None
    index = read_index(symbol, timeframe)
    lo = index.searchsorted(pd.Timestamp(meta["start"])) if meta["start"] else 0
    hi = index.searchsorted(pd.Timestamp(meta["end"])) if meta["end"] else len(index)
    rows = max(int(hi - lo), 0)
    if rows == 0:
        stored = (
            f"{index[0]:%Y-%m-%d %H:%M} to {index[-1]:%Y-%m-%d %H:%M}" if len(index) else "none"
        )
        raise InvalidInput(
            f"no {symbol} {timeframe} bars are stored from {meta['start'] or 'the first'} to "
            f"{meta['end'] or 'the last'} (stored: {stored}); choose start and end inside it",
            field="start",
        )
    test_bars = meta["test_bars"]
    if test_bars is None and meta["test_fraction"] is not None:
        test_bars = round(meta["test_fraction"] * rows)
    plan_folds(
        rows,
        folds=meta["folds"],
        scheme=meta["scheme"],
        test_bars=test_bars,
        train_bars=meta["train_bars"],
        purge_bars=meta["purge_bars"],
        embargo_bars=meta["embargo_bars"],
    )


def _placement(body: dict[str, Any]) -> tuple[str, str | None, bool]:
    mode = parse_execution_mode(body.get("execution_mode"))
    agent = body.get("agent") or None
    if agent is not None and (not isinstance(agent, str) or not AGENT_NAME_RE.match(agent)):
        raise InvalidInput(f"{agent!r} is not a valid agent name", field="agent")
    require_gpu = body.get("require_gpu", False)
    if require_gpu in ("", None):
        require_gpu = False
    if not isinstance(require_gpu, bool):
        raise InvalidInput("require_gpu must be true or false", field="require_gpu")
    return mode, agent, require_gpu


def evaluation_start(*, body: dict[str, Any], user: Any = None, detach: bool = False) -> Operation:
    """Validate an evaluation request and start it where it should run; returns the new
    (pending) operation. `detach` refuses work that would run in this process
    (`operations.execution.operation_submit`)."""
    metadata = evaluation_metadata(body=body)
    mode, agent, require_gpu = _placement(body)
    return operation_submit(
        operation_type=OPERATION_TYPE,
        metadata={
            **metadata,
            "execution_mode": mode,
            "agent": agent or "",
            "require_gpu": require_gpu,
        },
        execution_mode=mode,
        agent=agent,
        require_gpu=require_gpu,
        user=user,
        strategy_name=metadata["strategy"],
        input_series=[f"{metadata['symbol']}:{metadata['timeframe']}"],
        detach=detach,
    )
