"""The backtest engine: signals → next-bar positions → net returns, equity, trades and figures.

Plain NumPy/pandas, no Django, no torch (docs/research.md, *Backtests*, says why no library).

Timing rule (no look-ahead): a signal is decided at bar t's close, with what is known then; the
position it asks for is held over bar t+1 (`held[t + 1] = target[t]`), filled at bar t's close.
The return of bar t is `close[t] / close[t-1] - 1`, so bar t's strategy return is
`held[t] * r[t]` — it never involves a signal decided at or after bar t.

Costs: each change of position costs `rate × |held[t] - held[t-1]|` (units of equity traded),
charged in bar t, where `rate` is `(cost_bps + slippage_bps) / 1e4` plus
`(cost_pips + slippage_pips) × pip_size / fill price` (the fill is bar t-1's close). A flip from
+1 to -1 trades 2 units. Net return = gross return - cost; equity compounds from 1.0.

The simulation runs in chunks of bars (`Simulation.advance`) so the operation can report
progress and stop at a chunk boundary; `Simulation.summary()` describes the bars done so far.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

SIZING_METHODS = ("fixed", "volatility")
# 1.96: the two-sided 95 % normal quantile of the Sharpe ratio's interval.
Z95 = 1.959963984540054
SECONDS_PER_YEAR = 365.25 * 86400


@dataclass(frozen=True)
class Costs:
    """Per unit of equity traded; bps of notional and/or pips of price (pip_size per symbol)."""

    cost_bps: float = 0.0
    cost_pips: float = 0.0
    slippage_bps: float = 0.0
    slippage_pips: float = 0.0
    pip_size: float = 0.0001

    def rate(self, fill_price: np.ndarray) -> np.ndarray:
        """The fraction of traded notional paid at each fill price."""
        bps = (self.cost_bps + self.slippage_bps) / 1e4
        pips = (self.cost_pips + self.slippage_pips) * self.pip_size
        return bps + pips / np.asarray(fill_price, dtype=float)


@dataclass(frozen=True)
class Sizing:
    """`fixed`: |position| = `size`. `volatility`: |position| = target_vol / realised annualised
    volatility of the last `lookback` bar returns (known at the bar's close), capped at
    `max_leverage`; 0 until `lookback` returns exist."""

    method: str = "fixed"
    size: float = 1.0
    target_vol: float = 0.10
    lookback: int = 20
    max_leverage: float = 3.0


def pip_size_of(symbol: str) -> float:
    """0.01 for yen-quoted pairs, 0.0001 otherwise (the FX convention)."""
    return 0.01 if symbol.upper().endswith("JPY") else 0.0001


def bars_per_year_of(index: pd.DatetimeIndex) -> float:
    """Bars per year measured from the timestamps (so weekends and closed hours count as they
    are in the data, for any market calendar)."""
    if len(index) < 2:
        return 1.0
    span = (index[-1] - index[0]).total_seconds()
    return (len(index) - 1) / (span / SECONDS_PER_YEAR) if span > 0 else 1.0


def bar_returns(close: np.ndarray) -> np.ndarray:
    close = np.asarray(close, dtype=float)
    r = np.zeros(len(close))
    r[1:] = close[1:] / close[:-1] - 1.0
    return r


def position_sizes(close: np.ndarray, sizing: Sizing, bars_per_year: float) -> np.ndarray:
    """|position| decided at each bar's close, from returns up to and including that bar."""
    n = len(close)
    if sizing.method == "fixed":
        return np.full(n, float(sizing.size))
    r = pd.Series(bar_returns(close))
    r.iloc[0] = np.nan  # no return before the first bar
    vol = r.rolling(sizing.lookback, min_periods=sizing.lookback).std(ddof=1).to_numpy()
    ann = vol * math.sqrt(bars_per_year)
    with np.errstate(divide="ignore", invalid="ignore"):
        size = np.where(ann > 0, sizing.target_vol / ann, np.nan)
    size = np.minimum(size, sizing.max_leverage)
    return np.nan_to_num(size, nan=0.0)


def signals_to_held(signal: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Next-bar execution: the position held over bar t is the target decided at bar t-1."""
    target = np.asarray(signal, dtype=float) * np.asarray(sizes, dtype=float)
    held = np.zeros(len(target))
    held[1:] = target[:-1]
    return held


# --- rules using only what is known at each bar -----------------------------------------------
def zigzag_direction_known(close: np.ndarray, threshold: float) -> np.ndarray:
    """+1/-1: the zigzag leg confirmed by bar t's close (a move of `threshold` from the last
    extreme, as `training.labels.zigzag_pivots` confirms pivots); 0 before the first one. Unlike
    the zigzag labels, which look ahead to the leg's end, this uses closes ≤ t only."""
    prices = np.asarray(close, dtype=float).tolist()
    out = np.zeros(len(prices))
    if not prices:
        return out
    rise, fall = 1.0 + threshold, 1.0 - threshold
    direction = 0
    hi = lo = prices[0]
    for i in range(1, len(prices)):
        c = prices[i]
        if direction == 0:
            hi, lo = max(hi, c), min(lo, c)
            if c >= lo * rise:
                direction, hi = 1, c
            elif c <= hi * fall:
                direction, lo = -1, c
        elif direction == 1:
            if c > hi:
                hi = c
            elif c <= hi * fall:
                direction, lo = -1, c
        elif c < lo:
            lo = c
        elif c >= lo * rise:
            direction, hi = 1, c
        out[i] = direction
    return out


def momentum_signal(close: np.ndarray, lookback: int) -> np.ndarray:
    """sign(close[t] - close[t - lookback]); 0 for the first `lookback` bars."""
    close = np.asarray(close, dtype=float)
    out = np.zeros(len(close))
    if lookback < len(close):
        out[lookback:] = np.sign(close[lookback:] - close[:-lookback])
    return out


def classes_to_signal(signals: list[str] | np.ndarray, *, on_hold: str = "keep") -> np.ndarray:
    """BUY → +1, SELL → -1; HOLD keeps the previous signal (`keep`) or goes flat (`flat`)."""
    out = np.zeros(len(signals))
    last = 0.0
    for i, name in enumerate(signals):
        if name == "BUY":
            last = 1.0
        elif name == "SELL":
            last = -1.0
        elif on_hold == "flat":
            last = 0.0
        out[i] = last
    return out


# --- the simulation ---------------------------------------------------------------------------
class Simulation:
    """One strategy over one price series, computed chunk by chunk; state lives in the arrays,
    so a chunk boundary changes nothing in the figures."""

    def __init__(
        self,
        index: pd.DatetimeIndex,
        close: np.ndarray,
        held: np.ndarray,
        *,
        costs: Costs,
        bars_per_year: float,
    ) -> None:
        self.index = index
        self.close = np.asarray(close, dtype=float)
        self.held = np.asarray(held, dtype=float)
        self.costs = costs
        self.bars_per_year = bars_per_year
        n = len(self.close)
        self.n = n
        self.done = 0
        self.gross = np.zeros(n)
        self.cost = np.zeros(n)
        self.net = np.zeros(n)
        self.equity = np.ones(n)
        self.traded = np.zeros(n)
        self._r = bar_returns(self.close)

    def advance(self, bars: int) -> int:
        """Compute the next `bars` bars; returns how many are done."""
        a, b = self.done, min(self.n, self.done + max(1, bars))
        if a >= b:
            return self.done
        prev_held = np.concatenate(([self.held[a - 1] if a else 0.0], self.held[a : b - 1]))
        traded = np.abs(self.held[a:b] - prev_held)
        fill = np.concatenate(([self.close[a - 1] if a else self.close[0]], self.close[a : b - 1]))
        cost = traded * self.costs.rate(fill)
        gross = self.held[a:b] * self._r[a:b]
        net = gross - cost
        start_equity = self.equity[a - 1] if a else 1.0
        self.traded[a:b], self.cost[a:b], self.gross[a:b], self.net[a:b] = (
            traded,
            cost,
            gross,
            net,
        )
        self.equity[a:b] = start_equity * np.cumprod(1.0 + net)
        self.done = b
        return b

    def run(self) -> Simulation:
        self.advance(self.n)
        return self

    # --- results of the bars done ---
    def drawdown(self) -> np.ndarray:
        eq = self.equity[: self.done]
        peak = np.maximum.accumulate(np.maximum(eq, 1.0))
        return eq / peak - 1.0

    def trades(self) -> list[dict[str, Any]]:
        """Runs of bars held with one sign. Entry fills at the close before the first bar held,
        exit at the last bar's close; the trade's return compounds its bars' gross returns less
        its own costs (the entry's share of a flip, resizing inside it, and its exit)."""
        n = self.done
        held = self.held[:n]
        sign = np.sign(held)
        out: list[dict[str, Any]] = []
        i = 0
        while i < n:
            if sign[i] == 0:
                i += 1
                continue
            j = i
            while j + 1 < n and sign[j + 1] == sign[i]:
                j += 1
            growth = 1.0
            for t in range(i, j + 1):
                own = self.cost[t]
                if t == i and i > 0 and sign[i - 1] != 0:
                    # A flip: the part of this bar's cost closing the previous trade is not ours.
                    own = self.costs.rate(self.close[i - 1]) * abs(held[i])
                growth *= 1.0 + self.gross[t] - own
            is_open = j + 1 >= n
            if not is_open:
                growth *= 1.0 - float(self.costs.rate(self.close[j])) * abs(held[j])
            out.append(
                {
                    "direction": "long" if sign[i] > 0 else "short",
                    "entry_time": self.index[i - 1].isoformat() if i else self.index[0].isoformat(),
                    "exit_time": self.index[j].isoformat(),
                    "entry_price": float(self.close[i - 1] if i else self.close[0]),
                    "exit_price": float(self.close[j]),
                    "bars": int(j - i + 1),
                    "size": float(abs(held[i])),
                    "return": float(growth - 1.0),
                    "open": bool(is_open),
                }
            )
            i = j + 1
        return out

    def figures(self, trades: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Total and annualised return, volatility, Sharpe (with its 95 % interval), Sortino,
        max drawdown and its length, Calmar, hit rate, trades, turnover, exposure, costs."""
        n = self.done
        trades = self.trades() if trades is None else trades
        net = self.net[:n]
        bpy = self.bars_per_year
        total = float(self.equity[n - 1] - 1.0) if n else 0.0
        years = n / bpy if bpy > 0 else 0.0
        annual = (1.0 + total) ** (1.0 / years) - 1.0 if years > 0 and total > -1.0 else -1.0
        std = float(net.std(ddof=1)) if n > 1 else 0.0
        mean = float(net.mean()) if n else 0.0
        sharpe = sharpe_low = sharpe_high = None
        if std > 0:
            per_bar = mean / std
            # Lo (2002), iid returns: se(SR) = sqrt((1 + SR²/2) / n) per bar, then annualised.
            se = math.sqrt((1.0 + 0.5 * per_bar**2) / n)
            root = math.sqrt(bpy)
            sharpe = per_bar * root
            sharpe_low, sharpe_high = (per_bar - Z95 * se) * root, (per_bar + Z95 * se) * root
        downside = float(np.sqrt(np.mean(np.minimum(net, 0.0) ** 2))) if n else 0.0
        sortino = mean / downside * math.sqrt(bpy) if downside > 0 else None
        dd = self.drawdown()
        max_dd = float(-dd.min()) if n else 0.0
        dd_bars, longest = drawdown_lengths(dd)
        closed = [t for t in trades if not t["open"]]
        wins = sum(1 for t in closed if t["return"] > 0)
        turnover = float(self.traded[:n].sum())
        return {
            "bars": int(n),
            "years": years,
            "total_return": total,
            "annualised_return": annual,
            "annualised_volatility": std * math.sqrt(bpy),
            "sharpe": sharpe,
            "sharpe_ci95_low": sharpe_low,
            "sharpe_ci95_high": sharpe_high,
            "sortino": sortino,
            "max_drawdown": max_dd,
            "max_drawdown_bars": dd_bars,
            "longest_drawdown_bars": longest,
            "calmar": annual / max_dd if max_dd > 0 else None,
            "hit_rate": wins / len(closed) if closed else None,
            "trades": len(trades),
            "position_changes": int(np.count_nonzero(self.traded[:n])),
            "turnover": turnover,
            "annualised_turnover": turnover / years if years > 0 else None,
            "exposure": float(np.count_nonzero(self.held[:n]) / n) if n else 0.0,
            "costs_paid": float(self.cost[:n].sum()),
        }

    def curve_picks(self, max_points: int) -> np.ndarray:
        """At most `max_points` bars to draw (evenly spaced; the last bar and the deepest
        drawdown always among them)."""
        n = self.done
        if n == 0:
            return np.zeros(0, dtype=int)
        picks = np.linspace(0, n - 1, min(n, max_points)).round().astype(int)
        return np.unique(np.append(picks, int(self.drawdown().argmin())))

    def curve(self, picks: np.ndarray) -> dict[str, list]:
        """Time (Unix seconds), equity and drawdown at those bars."""
        dd = self.drawdown()
        return {
            "time": [int(self.index[i].timestamp()) for i in picks],
            "equity": [float(self.equity[i]) for i in picks],
            "drawdown": [float(dd[i]) for i in picks],
        }


def drawdown_lengths(dd: np.ndarray) -> tuple[int, int]:
    """(bars from the peak before the deepest drawdown until it was recovered — or the end —,
    the longest stretch of bars under water)."""
    n = len(dd)
    if n == 0 or dd.min() >= 0:
        return 0, 0
    under = dd < 0
    trough = int(dd.argmin())
    start = trough
    while start > 0 and under[start - 1]:
        start -= 1
    end = trough
    while end + 1 < n and under[end + 1]:
        end += 1
    longest = run = 0
    for flag in under:
        run = run + 1 if flag else 0
        longest = max(longest, run)
    return int(end - start + 1), int(longest)
