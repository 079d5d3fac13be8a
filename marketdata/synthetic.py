"""Deterministic synthetic bars, realistic enough to train on (pure numpy/pandas).

Any bar depends only on (symbol, timeframe, seed, its own day), never on the requested range: a
load split into segments gives exactly the bars of one big load, which is what the simulator
tests compare bar for bar.

How it looks real:
* a daily skeleton of log returns with *volatility clustering* (AR(1) log-volatility) and
  *trends* (a Markov chain of drift regimes), mildly mean-reverting to the symbol's price level;
* bars only when the market is open (`marketdata.calendar`): FX runs Sunday 17:00 to Friday
  17:00 New York, equities 09:30-16:00 on NYSE trading days; so there are weekend, overnight and
  holiday gaps, and prices jump across them (equities also gap overnight);
* within a day, a Brownian bridge from the day's open to its close with an intraday volatility
  profile (U-shape for equities, London/New York overlap for FX), wicks and volumes that scale
  with volatility.
"""

from __future__ import annotations

import zlib
from datetime import date, datetime
from functools import lru_cache

import numpy as np
import pandas as pd

from marketdata.bars import COLUMNS, empty_bars
from marketdata.calendar import NEW_YORK, expected_bar_times
from marketdata.symbols import SYNTHETIC_UNIVERSE, parse_symbol
from marketdata.timeframes import Timeframe

ANCHOR = date(2000, 1, 1)
HORIZON_DAYS = 40 * 366  # skeleton covers 2000..2040
DEFAULT_PARAMS = {"price": 100.0, "annual_vol": 0.25, "first_day": "2005-01-03"}


def _crc(text: str) -> int:
    return zlib.crc32(text.encode())


@lru_cache(maxsize=64)
def _skeleton(symbol: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per calendar day since ANCHOR: log close level, volatility multiplier, overnight gap."""
    params = SYNTHETIC_UNIVERSE.get(symbol, DEFAULT_PARAMS)
    asset_class = parse_symbol(symbol).asset_class
    rng = np.random.default_rng([seed, _crc(symbol)])
    n = HORIZON_DAYS
    sigma = params["annual_vol"] / np.sqrt(365.0)  # calendar-day vol (weekend moves gap)
    shocks = rng.standard_normal(n)
    vol_noise = rng.standard_normal(n) * 0.12
    switch = rng.random(n)
    regime_draw = rng.integers(-1, 2, n)
    gap_noise = rng.standard_normal(n)
    log_vol = np.empty(n)
    log_level = np.empty(n)
    base = np.log(params["price"])
    lv, level, regime = 0.0, base, 0
    for i in range(n):
        lv = 0.97 * lv + vol_noise[i]  # persistent log-volatility: calm and stormy stretches
        if switch[i] < 1.0 / 60.0:  # regimes last about two months
            regime = int(regime_draw[i])
        drift = regime * params["annual_vol"] * 1.2 / 365.0
        level += drift - 0.003 * (level - base) + sigma * np.exp(lv) * shocks[i]
        log_vol[i] = lv
        log_level[i] = level
    vol = np.exp(log_vol)
    gap_scale = 0.0 if asset_class == "forex" else 0.35
    overnight = gap_noise * sigma * vol * gap_scale
    return log_level, vol, overnight


def first_day(symbol: str) -> date:
    params = SYNTHETIC_UNIVERSE.get(symbol, DEFAULT_PARAMS)
    return date.fromisoformat(params["first_day"])


def _decimals(symbol: str) -> int:
    spec = parse_symbol(symbol)
    if spec.asset_class != "forex":
        return 2
    return 3 if spec.currency == "JPY" else 5


def _profile(asset_class: str, local_minutes: np.ndarray) -> np.ndarray:
    """Relative intraday volatility by New York wall-clock minute."""
    if asset_class == "forex":
        # London/New York overlap (08:00-12:00 NY) is the busiest, the Asian night the calmest.
        busy = np.exp(-(((local_minutes - 600) / 180.0) ** 2))
        return 0.5 + 1.2 * busy
    from_open = (local_minutes - 570) / 390.0  # 0 at the open, 1 at the close
    return 0.7 + 1.6 * (from_open - 0.5) ** 2 * 4 / 2  # U-shape


def generate_bars(
    symbol: str,
    timeframe: Timeframe,
    start: datetime | pd.Timestamp,
    end: datetime | pd.Timestamp,
    *,
    seed: int = 0,
) -> pd.DataFrame:
    """Bars of `symbol` with start ≤ timestamp < end, identical whatever range is asked."""
    spec = parse_symbol(symbol)
    lo = max(_utc(start), pd.Timestamp(first_day(symbol)).tz_localize("UTC"))
    hi = _utc(end)
    if hi <= lo:
        return empty_bars()
    # Whole trading days around the range are generated and then clipped, so the bridge of a
    # day never depends on where a request cut it.
    pad = pd.Timedelta(days=2)
    times = expected_bar_times(spec.asset_class, timeframe, lo - pad, hi + pad)
    if len(times) == 0:
        return empty_bars()
    log_level, vol, overnight = _skeleton(spec.symbol, seed)
    local = times.tz_convert(NEW_YORK)
    # The trading day a bar belongs to: FX days roll at 17:00 New York, equity days are dates.
    if spec.asset_class == "forex" and not timeframe.is_daily:
        day_ordinals = np.asarray(
            (local + pd.Timedelta(hours=7))
            .normalize()
            .tz_localize(None)
            .to_pydatetime()
            .astype("datetime64[D]")
            .astype(np.int64)
        )
    elif timeframe.is_daily:
        day_ordinals = times.tz_localize(None).values.astype("datetime64[D]").astype(np.int64)
    else:
        day_ordinals = np.asarray(
            local.tz_localize(None).normalize().values.astype("datetime64[D]").astype(np.int64)
        )
    day_index = day_ordinals - (np.datetime64(ANCHOR, "D").astype(np.int64))
    if day_index.min() < 1 or day_index.max() >= HORIZON_DAYS:
        raise ValueError(f"synthetic data covers {ANCHOR} to 2039 only")
    local_minutes = np.asarray(local.hour * 60 + local.minute, dtype=float)
    decimals = _decimals(spec.symbol)
    annual_vol = SYNTHETIC_UNIVERSE.get(spec.symbol, DEFAULT_PARAMS)["annual_vol"]
    base_volume = 1_000_000.0 if spec.asset_class != "forex" else 5_000.0
    out = np.empty((len(times), 5))
    # Each day is generated from its own RNG stream, so any sub-range reproduces it exactly.
    boundaries = np.flatnonzero(np.diff(day_index)) + 1
    for chunk in np.split(np.arange(len(times)), boundaries):
        d = int(day_index[chunk[0]])
        rng = np.random.default_rng([seed, _crc(spec.symbol), timeframe.seconds, d])
        day_open = log_level[d - 1] + overnight[d]
        day_close = log_level[d]
        day_sigma = 0.5 * abs(day_close - day_open) + 0.7 * vol[d] * annual_vol / np.sqrt(260)
        if timeframe.is_daily:
            # One bar per day: the whole day's move, with wicks from the day's volatility.
            z = np.abs(rng.standard_normal(2))
            o, c = day_open, day_close
            h = max(o, c) + 0.5 * day_sigma * z[0]
            low = min(o, c) - 0.5 * day_sigma * z[1]
            volume = base_volume * 6.5 * vol[d] * np.exp(0.3 * rng.standard_normal())
            out[chunk[0]] = (o, h, low, c, volume)
            continue
        # The bars of this day form a Brownian bridge from its open to its close. A day only
        # partly inside the calendar (Sunday evening FX) still uses its full-day slots, so the
        # bridge of a day does not depend on which of its bars exist.
        n = len(chunk)
        weights = _profile(spec.asset_class, local_minutes[chunk])
        bar_sigma = day_sigma * np.sqrt(weights / weights.sum())
        increments = bar_sigma * rng.standard_normal(n)
        increments -= (increments.sum() - (day_close - day_open)) * (
            bar_sigma**2 / (bar_sigma**2).sum()
        )
        closes = day_open + np.cumsum(increments)
        opens = np.concatenate([[day_open], closes[:-1]])
        wick = bar_sigma * 0.6
        highs = np.maximum(opens, closes) + wick * np.abs(rng.standard_normal(n))
        lows = np.minimum(opens, closes) - wick * np.abs(rng.standard_normal(n))
        volume = (
            base_volume
            * weights
            * vol[d]
            * np.exp(0.4 * rng.standard_normal(n))
            * timeframe.seconds
            / 3600.0
        )
        out[chunk, 0] = opens
        out[chunk, 1] = highs
        out[chunk, 2] = lows
        out[chunk, 3] = closes
        out[chunk, 4] = volume
    prices = np.round(np.exp(out[:, :4]), decimals)
    frame = pd.DataFrame(prices, columns=list(COLUMNS[:4]), index=times.as_unit("ns"))
    frame["volume"] = np.round(out[:, 4])
    frame.index.name = "timestamp"
    return frame[(frame.index >= lo) & (frame.index < hi)]


def _utc(value: datetime | pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
