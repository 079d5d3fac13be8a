"""Technical indicators over OHLCV bars, and the registry the strategy schema is checked against.

Every indicator is causal (a value at bar t uses bars ≤ t only) and returns one float array per
output, NaN during its warm-up. Definitions follow the textbook ones:

* EMA is seeded with the SMA of its first `period` values, then y = a·x + (1-a)·y_prev, a=2/(n+1).
* RSI, ATR and ADX use Wilder's smoothing (a = 1/n), seeded with the simple mean of the first n.
* Bollinger bands use the population standard deviation (ddof=0), as Bollinger defines them.
* Stochastic %K is 50 when the look-back range is flat (high == low), so a flat market is neutral
  rather than a division by zero.

Plain numpy/pandas, no Django and no torch: the executor and the predictor share this code, which
is what makes re-computed features identical to the trained ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

PRICE_SOURCES = ("open", "high", "low", "close")


# --- smoothing primitives -----------------------------------------------------------------------
def _first_valid(x: np.ndarray) -> int:
    valid = np.flatnonzero(~np.isnan(x))
    return int(valid[0]) if valid.size else x.shape[0]


def seeded_ewm(x: np.ndarray, period: int, alpha: float) -> np.ndarray:
    """Exponential smoothing seeded with the SMA of the first `period` valid values.

    Leading NaNs (an input that has its own warm-up, e.g. the MACD line) are skipped, so the
    output starts `period - 1` bars after the input's first valid value.
    """
    x = np.asarray(x, dtype=float)
    out = np.full(x.shape[0], np.nan)
    first = _first_valid(x)
    seed_end = first + period  # exclusive
    if seed_end > x.shape[0]:
        return out
    seeded = x[seed_end - 1 :].copy()
    seeded[0] = x[first:seed_end].mean()
    smoothed = pd.Series(seeded).ewm(alpha=alpha, adjust=False).mean().to_numpy()
    out[seed_end - 1 :] = smoothed
    return out


def ema(x: np.ndarray, period: int) -> np.ndarray:
    return seeded_ewm(x, period, 2.0 / (period + 1.0))


def wilder(x: np.ndarray, period: int) -> np.ndarray:
    return seeded_ewm(x, period, 1.0 / period)


def sma(x: np.ndarray, period: int) -> np.ndarray:
    return pd.Series(np.asarray(x, dtype=float)).rolling(period).mean().to_numpy()


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """max(h-l, |h-c_prev|, |l-c_prev|); the first bar has no previous close: h-l."""
    prev = np.concatenate(([np.nan], close[:-1]))
    tr = np.fmax(high - low, np.fmax(np.abs(high - prev), np.abs(low - prev)))
    tr[0] = high[0] - low[0]
    return tr


# --- indicators -----------------------------------------------------------------------------------
Outputs = dict[str, np.ndarray]


def _distance(source: np.ndarray, average: np.ndarray) -> np.ndarray:
    """source / average - 1: the price's position relative to its average, free of its level."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(average > 0, source / average - 1.0, np.nan)


def _sma(bars: pd.DataFrame, p: dict[str, Any]) -> Outputs:
    x = bars[p["source"]].to_numpy(float)
    value = sma(x, p["period"])
    return {"value": value, "distance": _distance(x, value)}


def _ema(bars: pd.DataFrame, p: dict[str, Any]) -> Outputs:
    x = bars[p["source"]].to_numpy(float)
    value = ema(x, p["period"])
    return {"value": value, "distance": _distance(x, value)}


def _rsi(bars: pd.DataFrame, p: dict[str, Any]) -> Outputs:
    close = bars[p["source"]].to_numpy(float)
    n = p["period"]
    change = np.diff(close, prepend=np.nan)
    gain = np.where(change > 0, change, 0.0)
    loss = np.where(change < 0, -change, 0.0)
    gain[0] = loss[0] = np.nan  # no change before the first bar
    avg_gain, avg_loss = wilder(gain, n), wilder(loss, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        rs = avg_gain / avg_loss
        rsi = 100.0 - 100.0 / (1.0 + rs)
    # No losses in the window: RSI is 100 (50 when nothing moved at all).
    rsi = np.where((avg_loss == 0) & (avg_gain > 0), 100.0, rsi)
    rsi = np.where((avg_loss == 0) & (avg_gain == 0), 50.0, rsi)
    return {"value": rsi}


def _macd(bars: pd.DataFrame, p: dict[str, Any]) -> Outputs:
    close = bars[p["source"]].to_numpy(float)
    line = ema(close, p["fast"]) - ema(close, p["slow"])
    signal = ema(line, p["signal"])
    return {"macd": line, "signal": signal, "histogram": line - signal}


def _bollinger(bars: pd.DataFrame, p: dict[str, Any]) -> Outputs:
    close = bars[p["source"]].to_numpy(float)
    rolling = pd.Series(close).rolling(p["period"])
    middle = rolling.mean().to_numpy()
    std = rolling.std(ddof=0).to_numpy()
    upper = middle + p["std_dev"] * std
    lower = middle - p["std_dev"] * std
    width = np.where(middle != 0, (upper - lower) / middle, 0.0)
    band = upper - lower
    with np.errstate(divide="ignore", invalid="ignore"):
        percent_b = np.where(band > 0, (close - lower) / band, 0.5)
    percent_b[np.isnan(middle)] = np.nan
    width[np.isnan(middle)] = np.nan
    return {
        "upper": upper,
        "middle": middle,
        "lower": lower,
        "width": width,
        "percent_b": percent_b,
    }


def _atr(bars: pd.DataFrame, p: dict[str, Any]) -> Outputs:
    close = bars["close"].to_numpy(float)
    tr = true_range(*(bars[c].to_numpy(float) for c in ("high", "low")), close)
    value = wilder(tr, p["period"])
    # The range as a fraction of the close: comparable across price levels and symbols.
    return {"value": value, "percent": value / close}


def _stochastic(bars: pd.DataFrame, p: dict[str, Any]) -> Outputs:
    high = bars["high"].rolling(p["k_period"]).max().to_numpy()
    low = bars["low"].rolling(p["k_period"]).min().to_numpy()
    close = bars["close"].to_numpy(float)
    rng = high - low
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.where(rng > 0, 100.0 * (close - low) / rng, 50.0)
    k[np.isnan(rng)] = np.nan
    if p["smooth"] > 1:  # the "slow" stochastic smooths %K before %D
        k = sma(k, p["smooth"])
    return {"k": k, "d": sma(k, p["d_period"])}


def _roc(bars: pd.DataFrame, p: dict[str, Any]) -> Outputs:
    x = bars[p["source"]].to_numpy(float)
    n = p["period"]
    out = np.full(x.shape[0], np.nan)
    out[n:] = 100.0 * (x[n:] / x[:-n] - 1.0)
    return {"value": out}


def _adx(bars: pd.DataFrame, p: dict[str, Any]) -> Outputs:
    high, low, close = (bars[c].to_numpy(float) for c in ("high", "low", "close"))
    n = p["period"]
    up = np.diff(high, prepend=np.nan)
    down = -np.diff(low, prepend=np.nan)
    plus_dm = np.where((up > down) & (up > 0), up, 0.0)
    minus_dm = np.where((down > up) & (down > 0), down, 0.0)
    tr = true_range(high, low, close)
    # Directional movement starts at bar 1 (it needs a previous bar): align TR with it.
    plus_dm[0] = minus_dm[0] = tr[0] = np.nan
    atr = wilder(tr, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        plus_di = np.where(atr > 0, 100.0 * wilder(plus_dm, n) / atr, 0.0)
        minus_di = np.where(atr > 0, 100.0 * wilder(minus_dm, n) / atr, 0.0)
        total = plus_di + minus_di
        dx = np.where(total > 0, 100.0 * np.abs(plus_di - minus_di) / total, 0.0)
    plus_di[np.isnan(atr)] = minus_di[np.isnan(atr)] = dx[np.isnan(atr)] = np.nan
    return {"adx": wilder(dx, n), "plus_di": plus_di, "minus_di": minus_di}


def _obv(bars: pd.DataFrame, p: dict[str, Any]) -> Outputs:
    close = bars["close"].to_numpy(float)
    volume = bars["volume"].to_numpy(float)
    direction = np.sign(np.diff(close, prepend=close[:1]))
    return {"value": np.cumsum(direction * volume)}


# --- registry -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """One parameter: `kind` is "int" (≥ minimum), "float" (> minimum) or "source"."""

    name: str
    kind: str
    default: Any
    minimum: float = 0.0


@dataclass(frozen=True)
class IndicatorSpec:
    type: str
    title: str
    compute: Callable[[pd.DataFrame, dict[str, Any]], Outputs]
    params: tuple[Param, ...]
    outputs: tuple[str, ...]
    columns: tuple[str, ...] = field(default=("close",))
    # Bars from the series' start until the values no longer depend on where it started (see
    # `WARMUP_FACTORS`); 0: never (a cumulative sum such as OBV).
    warmup: Callable[[dict[str, Any]], int] = field(default=lambda p: 0)
    # Outputs that are price levels (in the instrument's price units, drifting with its level):
    # a model fed one sees test inputs outside the training range once the price has moved.
    price_levels: tuple[str, ...] = ()

    @property
    def default_output(self) -> str:
        return self.outputs[0]

    def warmup_bars(self, params: dict[str, Any]) -> int:
        full = {p.name: p.default for p in self.params}
        full.update(params)
        return int(self.warmup(full))


# Convergence: an exponential average seeded at bar n keeps a weight (1 - a)^k on its seed k bars
# later. EMA (a = 2/(n+1)) after 5·n bars: e^-10 ≈ 5e-5. Wilder's smoothing (a = 1/n, the EMA of
# span 2n - 1) needs 10·n bars for the same e^-10. Windowed indicators (SMA, Bollinger, stochastic,
# ROC) are exact once defined: factor 1.
WARMUP_FACTORS = {"ema": 5, "wilder": 10, "window": 1}


def _period(default: int, name: str = "period") -> Param:
    return Param(name, "int", default, 2)


SOURCE = Param("source", "source", "close")

INDICATORS: dict[str, IndicatorSpec] = {
    spec.type: spec
    for spec in (
        IndicatorSpec(
            "sma",
            "Simple moving average",
            _sma,
            (_period(20), SOURCE),
            ("value", "distance"),
            warmup=lambda p: WARMUP_FACTORS["window"] * p["period"],
            price_levels=("value",),
        ),
        IndicatorSpec(
            "ema",
            "Exponential moving average",
            _ema,
            (_period(20), SOURCE),
            ("value", "distance"),
            warmup=lambda p: WARMUP_FACTORS["ema"] * p["period"],
            price_levels=("value",),
        ),
        IndicatorSpec(
            "rsi",
            "Relative strength index",
            _rsi,
            (_period(14), SOURCE),
            ("value",),
            # One bar for the first change, then Wilder's smoothing of gains and losses.
            warmup=lambda p: 1 + WARMUP_FACTORS["wilder"] * p["period"],
        ),
        IndicatorSpec(
            "macd",
            "Moving average convergence/divergence",
            _macd,
            (_period(12, "fast"), _period(26, "slow"), _period(9, "signal"), SOURCE),
            ("macd", "signal", "histogram"),
            # The slower EMA of the line, then the signal EMA of that line.
            warmup=lambda p: WARMUP_FACTORS["ema"] * (max(p["fast"], p["slow"]) + p["signal"]),
        ),
        IndicatorSpec(
            "bollinger",
            "Bollinger bands",
            _bollinger,
            (_period(20), Param("std_dev", "float", 2.0, 0.0), SOURCE),
            ("percent_b", "width", "upper", "middle", "lower"),
            warmup=lambda p: WARMUP_FACTORS["window"] * p["period"],
            price_levels=("upper", "middle", "lower"),
        ),
        IndicatorSpec(
            "atr",
            "Average true range",
            _atr,
            (_period(14),),
            ("value", "percent"),
            ("high", "low", "close"),
            warmup=lambda p: 1 + WARMUP_FACTORS["wilder"] * p["period"],
        ),
        IndicatorSpec(
            "stochastic",
            "Stochastic oscillator",
            _stochastic,
            (_period(14, "k_period"), _period(3, "d_period"), Param("smooth", "int", 1, 1)),
            ("k", "d"),
            ("high", "low", "close"),
            warmup=lambda p: (
                WARMUP_FACTORS["window"] * (p["k_period"] + p["smooth"] + p["d_period"])
            ),
        ),
        IndicatorSpec(
            "roc",
            "Rate of change (%)",
            _roc,
            (Param("period", "int", 10, 1), SOURCE),
            ("value",),
            warmup=lambda p: WARMUP_FACTORS["window"] * p["period"],
        ),
        IndicatorSpec(
            "adx",
            "Average directional index",
            _adx,
            (_period(14),),
            ("adx", "plus_di", "minus_di"),
            ("high", "low", "close"),
            # Wilder's smoothing twice: the directional lines, then the ADX of their DX.
            warmup=lambda p: 1 + 2 * WARMUP_FACTORS["wilder"] * p["period"],
        ),
        IndicatorSpec("obv", "On-balance volume", _obv, (), ("value",), ("close", "volume")),
    )
}


def compute_indicator(type_: str, bars: pd.DataFrame, params: dict[str, Any]) -> Outputs:
    """Compute one indicator; `params` must already be validated (see `training.strategy`)."""
    return INDICATORS[type_].compute(bars, params)
