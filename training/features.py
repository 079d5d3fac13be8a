"""From bars to the model's input matrix: checks, indicators, fuzzy memberships, alignment.

One function chain serves training and prediction (`training.predict`), so a model always sees
features computed exactly as when it was trained. Feature names are `{timeframe}:{input}` (e.g.
`1h:rsi_zone.oversold`, `4h:macd.histogram`), in the order: timeframes finest first, then the
strategy's `model_inputs` order.

Alignment on the base timeframe never looks ahead: a higher-timeframe bar is used only from the
base bar whose *close* is at or after that bar's close (a 4h bar starting 00:00 feeds the 1h bar
starting 03:00, never the one starting 01:00).

No Django, no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from training import fuzzy
from training.errors import TrainingDataError
from training.indicators import INDICATORS, compute_indicator
from training.strategy import TIMEFRAME_MINUTES

BAR_COLUMNS = ("open", "high", "low", "close", "volume")
# Called before each indicator so the executor can report a phase per indicator.
IndicatorHook = Callable[[str, str], None]


def _stamp(ts: Any) -> str:
    return pd.Timestamp(ts).strftime("%Y-%m-%dT%H:%MZ")


def check_bars(bars: Any, symbol: str, timeframe: str) -> pd.DataFrame:
    """Validate one bar series and return it as float columns on a sorted UTC index.

    Errors say which series, which column and the first bad timestamp.
    """
    where = f"bars {symbol} {timeframe}"
    if not isinstance(bars, pd.DataFrame):
        raise TrainingDataError(f"{where}: expected a DataFrame, got {type(bars).__name__}")
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise TrainingDataError(f"{where}: missing column(s) {', '.join(missing)}")
    if bars.empty:
        raise TrainingDataError(f"{where}: no bars in the requested range")
    if not isinstance(bars.index, pd.DatetimeIndex):
        raise TrainingDataError(f"{where}: the index must be timestamps (a DatetimeIndex)")
    df = bars.loc[:, list(BAR_COLUMNS)].astype(float)
    index = df.index.tz_localize("UTC") if df.index.tz is None else df.index.tz_convert("UTC")
    df.index = index.rename("timestamp")
    if not df.index.is_monotonic_increasing:
        df = df.sort_index()
    dupes = df.index.duplicated()
    if dupes.any():
        raise TrainingDataError(
            f"{where}: timestamp {_stamp(df.index[dupes][0])} appears more than once"
        )
    values = df.to_numpy()
    bad = ~np.isfinite(values)
    if bad.any():
        col = int(np.argwhere(bad)[0][1])
        rows = np.flatnonzero(bad[:, col])
        raise TrainingDataError(
            f"{where}: {int(bad[:, col].sum())} NaN/infinite value(s) in column "
            f"{BAR_COLUMNS[col]} (first at {_stamp(df.index[rows[0]])})"
        )
    nonpositive = df["close"].to_numpy() <= 0
    if nonpositive.any():
        first = df.index[np.flatnonzero(nonpositive)[0]]
        raise TrainingDataError(f"{where}: close must be > 0 (first bad bar at {_stamp(first)})")
    return df


def resample_bars(bars: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """OHLCV bars → `timeframe` bars in UTC-aligned bins labelled by their start; empty bins
    (weekends, holes) are dropped rather than invented."""
    rule = f"{TIMEFRAME_MINUTES[timeframe]}min"
    out = bars.resample(rule, label="left", closed="left").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    return out.dropna(subset=["open", "close"])


def needed_indicators(config: dict[str, Any]) -> list[str]:
    """Indicator ids the model inputs use, directly or through a fuzzy set, in definition order."""
    used: set[str] = set()
    for ref in config["model_inputs"]:
        head = ref.partition(".")[0]
        if head in config["fuzzy_sets"]:
            used.add(config["fuzzy_sets"][head]["input"].partition(".")[0])
        else:
            used.add(head)
    return [i for i in config["indicators"] if i in used]


def timeframe_inputs(
    config: dict[str, Any], bars: pd.DataFrame, on_indicator: IndicatorHook | None = None
) -> pd.DataFrame:
    """The strategy's model inputs for one bar series (columns = canonical input refs), NaN
    until each indicator has converged (`IndicatorSpec.warmup_bars`, docs/training.md)."""
    outputs: dict[str, np.ndarray] = {}
    for ind_id in needed_indicators(config):
        params = config["indicators"][ind_id]
        if on_indicator is not None:
            on_indicator(ind_id, params["type"])
        missing = [c for c in INDICATORS[params["type"]].columns if c not in bars.columns]
        if missing:
            raise TrainingDataError(f"indicator {ind_id}: bars lack column(s) {missing}")
        args = {k: v for k, v in params.items() if k != "type"}
        # Rows before the indicator has converged (its value still depends on where the series
        # started) are blanked, so they fall into the warm-up `symbol_features` drops.
        converged = INDICATORS[params["type"]].warmup_bars(args)
        for out_name, computed in compute_indicator(params["type"], bars, args).items():
            values = np.array(computed, dtype=float)
            values[:converged] = np.nan
            outputs[f"{ind_id}.{out_name}"] = values
    columns: dict[str, np.ndarray] = {}
    for ref in config["model_inputs"]:
        head, _, member = ref.partition(".")
        if head in config["fuzzy_sets"]:
            group = config["fuzzy_sets"][head]
            spec = group["sets"][member]
            columns[ref] = fuzzy.membership(
                spec["type"], spec["parameters"], outputs[group["input"]]
            )
        else:
            columns[ref] = outputs[ref]
    return pd.DataFrame(columns, index=bars.index)


def feature_kinds(config: dict[str, Any]) -> dict[str, str]:
    """`fuzzy` inputs are already in [0, 1]; `indicator` inputs get z-scored."""
    return {
        ref: "fuzzy" if ref.partition(".")[0] in config["fuzzy_sets"] else "indicator"
        for ref in config["model_inputs"]
    }


def price_level_inputs(config: dict[str, Any]) -> list[str]:
    """Model inputs that are raw price levels (an SMA's value, a Bollinger band): in price units,
    they leave the training range as soon as the price moves (use e.g. `ema_50.distance`)."""
    found = []
    for ref in config["model_inputs"]:
        head, _, output = ref.partition(".")
        if head in config["fuzzy_sets"]:
            continue
        spec = INDICATORS[config["indicators"][head]["type"]]
        if (output or spec.default_output) in spec.price_levels:
            found.append(ref)
    return found


def feature_names(config: dict[str, Any], timeframes: list[str]) -> list[str]:
    return [f"{tf}:{ref}" for tf in timeframes for ref in config["model_inputs"]]


def align_on_base(
    base_index: pd.DatetimeIndex,
    base_timeframe: str,
    per_timeframe: dict[str, pd.DataFrame],
) -> pd.DataFrame:
    """Join every timeframe's inputs onto the base bars, using only completed bars."""
    base_close = base_index + pd.Timedelta(minutes=TIMEFRAME_MINUTES[base_timeframe])
    parts = []
    for tf, frame in per_timeframe.items():
        renamed = frame.add_prefix(f"{tf}:")
        if tf == base_timeframe:
            parts.append(renamed.reindex(base_index))
            continue
        available = frame.index + pd.Timedelta(minutes=TIMEFRAME_MINUTES[tf])
        left = pd.DataFrame({"_close_at": base_close.as_unit("ns")})
        right = renamed.reset_index(drop=True)
        right.insert(0, "_available_at", available.as_unit("ns"))
        merged = pd.merge_asof(
            left, right, left_on="_close_at", right_on="_available_at", direction="backward"
        )
        merged.index = base_index
        parts.append(merged.drop(columns=["_close_at", "_available_at"]))
    return pd.concat(parts, axis=1)


def symbol_features(
    config: dict[str, Any],
    symbol: str,
    per_timeframe: dict[str, pd.DataFrame],
    base_bars: pd.DataFrame,
    timeframes: list[str],
) -> tuple[pd.DataFrame, pd.Series, int]:
    """Align one symbol's per-timeframe inputs on its base bars and drop the warm-up rows: every
    row before the first one where all inputs of every timeframe have converged.

    Returns (features, base closes, warm-up rows dropped). Raises `TrainingDataError` when the
    warm-up eats every row, or when an input is NaN after its warm-up (naming input and time).
    """
    base_tf = timeframes[0]
    frame = align_on_base(base_bars.index, base_tf, {tf: per_timeframe[tf] for tf in timeframes})
    frame = frame[feature_names(config, timeframes)]
    valid = np.isfinite(frame.to_numpy()).all(axis=1)
    if not valid.any():
        raise TrainingDataError(
            f"{symbol}: not enough bars for the indicators' warm-up "
            f"({len(frame)} {base_tf} bars, no row has every input defined); "
            "load a longer history or shorten the indicator periods"
        )
    warmup = int(np.argmax(valid))
    after = frame.iloc[warmup:]
    bad = ~np.isfinite(after.to_numpy())
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise TrainingDataError(
            f"{symbol}: input {after.columns[col]} is NaN at {_stamp(after.index[row])} after "
            "its warm-up (a gap or flat stretch in the data the indicator cannot handle)"
        )
    return after, base_bars["close"].iloc[warmup:], warmup


def compute_features(
    config: dict[str, Any],
    symbol: str,
    bars_by_timeframe: dict[str, pd.DataFrame],
    timeframes: list[str],
) -> tuple[pd.DataFrame, pd.Series, int]:
    """Checked bars → aligned raw features for one symbol (the predictor's one-call path)."""
    checked = {tf: check_bars(bars_by_timeframe[tf], symbol, tf) for tf in timeframes}
    per_tf = {tf: timeframe_inputs(config, checked[tf]) for tf in timeframes}
    return symbol_features(config, symbol, per_tf, checked[timeframes[0]], timeframes)


def normalisation(
    train: np.ndarray, names: list[str], kinds: dict[str, str]
) -> tuple[list[float], list[float]]:
    """Per-feature (mean, std) from the training rows only, so nothing leaks from later data.

    Fuzzy inputs keep their [0, 1] scale. A constant column (zero volume → OBV is flat) gets
    std 1, so it becomes a column of zeros instead of a division by zero.
    """
    means, stds = [], []
    for j, name in enumerate(names):
        if kinds[name.partition(":")[2]] == "fuzzy":
            means.append(0.0)
            stds.append(1.0)
            continue
        col = train[:, j]
        mean, std = float(col.mean()), float(col.std())
        means.append(mean)
        stds.append(std if std > 1e-12 and np.isfinite(std) else 1.0)
    return means, stds


def apply_normalisation(x: np.ndarray, means: list[float], stds: list[float]) -> np.ndarray:
    return ((x - np.asarray(means)) / np.asarray(stds)).astype(np.float32)
