"""What a backtest request may ask for, checked and bounded; errors name the field.

Used by `backtest.services` on a start and by `backtest.kinds` again when the run is prepared
(a stored request is re-checked on a re-run). No Django models.
"""

from __future__ import annotations

from typing import Any

from marketdata.store import parse_bound
from operations.bounds import bounded_float, bounded_int
from operations.exceptions import InvalidInput
from training.strategy import SYMBOL_RE

SIGNAL_SOURCES = ("model", "rule")
ON_HOLD = ("keep", "flat")
SIZING_METHODS = ("fixed", "volatility")
# Costs and slippage above 1000 bps (10 %) or 1000 pips a trade are typing errors, not markets.
MAX_COST_BPS = 1000.0
MAX_COST_PIPS = 1000.0
CHUNK_BARS_DEFAULT = 5000
CHUNK_BARS_RANGE = (50, 1_000_000)


def _choice(value: Any, field: str, choices: tuple[str, ...], default: str) -> str:
    if value is None or value == "":
        return default
    if value not in choices:
        raise InvalidInput(f"{field} must be one of {', '.join(choices)}", field=field)
    return value


def _cost_pair(body: dict[str, Any], bps_key: str, pips_key: str) -> tuple[float, float]:
    bps = bounded_float(body.get(bps_key) or 0, bps_key, 0.0, MAX_COST_BPS)
    pips = bounded_float(body.get(pips_key) or 0, pips_key, 0.0, MAX_COST_PIPS)
    if bps and pips:
        raise InvalidInput(f"give {bps_key} or {pips_key}, not both", field=pips_key)
    return bps, pips


def model_id_of(value: Any) -> int:
    if value is None or value == "":
        raise InvalidInput("model_id is required", field="model_id")
    return bounded_int(value, "model_id", 1, 2**63 - 1)


def check_request(body: dict[str, Any]) -> dict[str, Any]:
    """The validated parameters of a backtest (without the model, which the service resolves).

    Keys: symbol, start, end (ISO UTC or None), cost_bps, cost_pips, slippage_bps,
    slippage_pips, pip_size (None: by symbol), sizing {method, size, target_vol, lookback,
    max_leverage}, on_hold, signals, chunk_bars."""
    if not isinstance(body, dict):
        raise InvalidInput("the request must be a JSON object")
    symbol = body.get("symbol")
    if symbol not in (None, ""):
        if not isinstance(symbol, str) or not SYMBOL_RE.match(symbol.upper()):
            raise InvalidInput(f"{symbol!r} is not a valid symbol", field="symbol")
        symbol = symbol.upper()
    else:
        symbol = None
    start, end = parse_bound(body.get("start"), "start"), parse_bound(body.get("end"), "end")
    if start is not None and end is not None and start >= end:
        raise InvalidInput("end must be after start", field="end")
    cost_bps, cost_pips = _cost_pair(body, "cost_bps", "cost_pips")
    slippage_bps, slippage_pips = _cost_pair(body, "slippage_bps", "slippage_pips")
    pip_size = body.get("pip_size")
    pip_size = (
        None if pip_size in (None, "") else bounded_float(pip_size, "pip_size", 0, 1, lo_open=True)
    )
    raw_sizing = body.get("sizing")
    if raw_sizing in (None, ""):
        raw_sizing = {}
    if isinstance(raw_sizing, str):
        raw_sizing = {"method": raw_sizing}
    if not isinstance(raw_sizing, dict):
        raise InvalidInput("sizing must be fixed, volatility or an object", field="sizing")
    unknown = sorted(set(raw_sizing) - {"method", "size", "target_vol", "lookback", "max_leverage"})
    if unknown:
        raise InvalidInput(f"unknown sizing key {unknown[0]!r}", field=f"sizing.{unknown[0]}")
    sizing = {
        "method": _choice(raw_sizing.get("method"), "sizing.method", SIZING_METHODS, "fixed"),
        "size": bounded_float(raw_sizing.get("size", 1.0), "sizing.size", 0, 10, lo_open=True),
        "target_vol": bounded_float(
            raw_sizing.get("target_vol", 0.10), "sizing.target_vol", 0, 2, lo_open=True
        ),
        "lookback": bounded_int(raw_sizing.get("lookback", 20), "sizing.lookback", 2, 10_000),
        "max_leverage": bounded_float(
            raw_sizing.get("max_leverage", 3.0), "sizing.max_leverage", 0, 20, lo_open=True
        ),
    }
    chunk = body.get("chunk_bars")
    return {
        "symbol": symbol,
        "start": start.isoformat() if start is not None else None,
        "end": end.isoformat() if end is not None else None,
        "cost_bps": cost_bps,
        "cost_pips": cost_pips,
        "slippage_bps": slippage_bps,
        "slippage_pips": slippage_pips,
        "pip_size": pip_size,
        "sizing": sizing,
        "on_hold": _choice(body.get("on_hold"), "on_hold", ON_HOLD, "keep"),
        "signals": _choice(body.get("signals"), "signals", SIGNAL_SOURCES, "model"),
        "chunk_bars": CHUNK_BARS_DEFAULT
        if chunk in (None, "")
        else bounded_int(chunk, "chunk_bars", *CHUNK_BARS_RANGE),
    }
