"""One backtest run, here or on an agent: model → signals → simulation → result summary.

Everything comes from `ctx.metadata` (the checked request, the model file and its sha256, the
model's training range). Steps: load the model (`weights_only=True`, sha256 checked), read the
stored bars of each timeframe it needs with a warm-up margin before `start`, predict BUY/HOLD/SELL
per base bar, turn them into signals, then simulate in chunks of bars — progress after each,
a cancel acknowledged at the next chunk boundary with the figures of the bars done so far.
When it stops (a cancel, an error) and every `KTRDR_CHECKPOINT_EVERY_SECONDS` while it runs, the
strategy simulation's state at the last chunk boundary is saved to `state_dir`
(`backtest.state`); a resume (`metadata["resume"]`) restores it and goes on from that bar, with
the same chunk boundaries, so it ends with the same figures and trades as an uninterrupted run.
Buy-and-hold and the rule baseline run over the same bars with the same costs and sizing.

No Django; torch is imported by `training.predict` inside its functions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.engine import (
    Costs,
    Simulation,
    Sizing,
    bars_per_year_of,
    classes_to_signal,
    momentum_signal,
    pip_size_of,
    position_sizes,
    signals_to_held,
    zigzag_direction_known,
)
from backtest.state import restore_engine_state, save_engine_state
from marketdata.store import SeriesNotFound, read_bars
from operations.cancellation import OperationCancelled
from operations.local import WorkContext
from training.features import resample_bars
from training.predict import ModelPredictor

LoadBars = Callable[[str, str, Any, Any], pd.DataFrame]
# Bars read before `start` so indicators are warmed up when the range begins.
WARMUP_MARGIN_BARS = 1000
MAX_BARS = 500_000
# What the result keeps, so an operation row (listed 50 at a time) stays ~100 kB at most.
MAX_CURVE_POINTS = 500
MAX_TRADES_IN_SUMMARY = 250
# Every trade is also a `trade` metric record (paged by GET /api/v1/backtests/{id}/trades/), up
# to this many.
MAX_TRADE_RECORDS = 100_000
# Of the percentage: loading and predicting, then the simulation's chunks.
SIMULATION_START_PCT = 30.0


class BacktestError(RuntimeError):
    """A run that cannot go on (no bars in the range, too many bars); the message says why."""


def default_load_bars(symbol: str, timeframe: str, start: Any, end: Any) -> pd.DataFrame:
    return read_bars(symbol, timeframe, start=start, end=end)


def rule_of(config: dict[str, Any]) -> dict[str, Any]:
    """The rule baseline of a strategy, using only what is known at each bar's close: the
    zigzag direction confirmed so far (zigzag labels, same threshold), else the sign of the
    move over the label horizon (forward-return labels)."""
    labels = config.get("labels") or {}
    if labels.get("type") == "zigzag":
        threshold = float(labels.get("threshold", 0.01))
        return {
            "name": "zigzag_known",
            "threshold": threshold,
            "description": f"long/short the zigzag leg confirmed so far ({threshold:.2%} moves)",
        }
    horizon = int(labels.get("horizon", 12))
    return {
        "name": "momentum",
        "lookback": horizon,
        "description": f"long/short the sign of the last {horizon} bars' move",
    }


def rule_signal(rule: dict[str, Any], close: np.ndarray) -> np.ndarray:
    if rule["name"] == "zigzag_known":
        return zigzag_direction_known(close, rule["threshold"])
    return momentum_signal(close, rule["lookback"])


def load_window(
    load_bars: LoadBars, symbol: str, timeframes: list[str], start: Any, end: Any
) -> tuple[dict[str, pd.DataFrame], int]:
    """Bars per timeframe up to `end`, from WARMUP_MARGIN_BARS base bars before `start`; and
    the position of the first base bar in the range."""
    base_tf = timeframes[0]
    base = load_bars(symbol, base_tf, None, end)
    first = int(base.index.searchsorted(pd.Timestamp(start))) if start else 0
    if first >= len(base):
        span = f"from {str(start or 'the first bar')[:16]} to {str(end or 'the last bar')[:16]}"
        raise BacktestError(f"no {symbol} {base_tf} bars are stored {span}")
    if len(base) - first > MAX_BARS:
        raise BacktestError(f"the range holds {len(base) - first:,} bars; at most {MAX_BARS:,}")
    cut = max(0, first - WARMUP_MARGIN_BARS)
    base = base.iloc[cut:]
    out = {base_tf: base}
    for tf in timeframes[1:]:
        try:
            frame = load_bars(symbol, tf, base.index[0], end)
        except SeriesNotFound:
            frame = resample_bars(base, tf)  # as the training executor does
        out[tf] = frame
    return out, first - cut


def _summary_of(
    sims: dict[str, Simulation], meta: dict[str, Any], rule: dict[str, Any], *, partial: bool
) -> dict[str, Any]:
    main = sims["strategy"]
    trades = main.trades()
    picks = main.curve_picks(MAX_CURVE_POINTS)
    curve = main.curve(picks)
    baselines = {}
    for name in ("buy_and_hold", "rule"):
        sim = sims[name]
        sim.done = main.done  # the same bars as the strategy, also when it stopped early
        curve[name] = [float(sim.equity[i]) for i in picks]
        baselines[name] = sim.figures()
    baselines["rule"] = {**rule, **baselines["rule"]}
    n = main.done
    return {
        "figures": main.figures(trades),
        "baselines": baselines,
        "bars_done": n,
        "bars_total": main.n,
        "first_bar": main.index[0].isoformat() if n else None,
        "last_bar": main.index[n - 1].isoformat() if n else None,
        "curve": curve,
        "trades": trades[:MAX_TRADES_IN_SUMMARY],
        "trades_total": len(trades),
        "trades_truncated": len(trades) > MAX_TRADES_IN_SUMMARY,
        "partial": partial,
    }


def in_sample_check(
    index: pd.DatetimeIndex, training_range: dict[str, Any] | None
) -> dict[str, Any]:
    """Whether the bars overlap the model's training data (train, validation and test splits
    alike: the features were normalised and the model chosen on them)."""
    rng = training_range or {}
    if not rng.get("start") or not rng.get("end") or not len(index):
        return {"overlaps": False, "known": False, "bars_in_training_range": 0}
    lo, hi = pd.Timestamp(rng["start"]), pd.Timestamp(rng["end"])
    inside = int(((index >= lo) & (index <= hi)).sum())
    return {
        "overlaps": inside > 0,
        "known": True,
        "training_start": lo.isoformat(),
        "training_end": hi.isoformat(),
        "bars_in_training_range": inside,
        "share_in_training_range": inside / len(index),
    }


def run_backtest(
    ctx: WorkContext,
    *,
    load_bars: LoadBars = default_load_bars,
    model_path: Any = None,
    state_dir: Path | None = None,
    read_state: Callable[[dict[str, Any]], bytes] | None = None,
    save_every_seconds: float = 0.0,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """`load_bars` and `model_path`: this process's store and the registered model file, or
    (on an agent) the bars and model file sent with the start. `state_dir`: where its engine
    state is saved when it stops early (none: not saved); `read_state`: the saved state a
    resumed run starts from."""
    meta = ctx.metadata
    bridge, token = ctx.bridge, ctx.token
    bridge.update(phase="loading model", percentage=1.0, message=f"loading {meta['model_label']}")
    token.raise_if_cancelled("loading the model")
    predictor = ModelPredictor.from_file(
        model_path or meta["model_path"], expected_sha256=meta["model_sha256"]
    )
    symbol, timeframes = meta["symbol"], predictor.timeframes
    bridge.update(phase="loading bars", percentage=5.0, message=f"reading {symbol} bars")
    token.raise_if_cancelled("loading bars")
    bars, first = load_window(load_bars, symbol, timeframes, meta.get("start"), meta.get("end"))
    base = bars[timeframes[0]]
    close_all = base["close"].to_numpy(dtype=float)
    index = base.index[first:]
    close = close_all[first:]
    token.raise_if_cancelled("predicting")
    rule = rule_of(predictor.config)
    if meta["signals"] == "model":
        bridge.update(phase="predicting", percentage=10.0, message=f"scoring {len(index)} bars")
        predicted = predictor.predict(bars, symbol)["signal"].reindex(base.index)
        # Bars the features cannot be computed for yet (the series' own warm-up) hold no signal.
        classes = predicted.fillna("NONE").tolist()
        signal_all = classes_to_signal(classes, on_hold=meta["on_hold"])
        unscored = int(predicted.iloc[first:].isna().sum())
    else:
        signal_all = rule_signal(rule, close_all)
        unscored = 0
    token.raise_if_cancelled("sizing")
    bpy = bars_per_year_of(index)
    sizing = Sizing(**meta["sizing"])
    sizes_all = position_sizes(close_all, sizing, bpy)
    costs = Costs(
        cost_bps=meta["cost_bps"],
        cost_pips=meta["cost_pips"],
        slippage_bps=meta["slippage_bps"],
        slippage_pips=meta["slippage_pips"],
        pip_size=meta.get("pip_size") or pip_size_of(symbol),
    )

    def simulation(signal_in_range: np.ndarray) -> Simulation:
        # The position at the range's first bar is flat: the run starts with no position.
        held = signals_to_held(signal_in_range, sizes_all[first:])
        return Simulation(index, close, held, costs=costs, bars_per_year=bpy)

    sims = {
        "strategy": simulation(signal_all[first:]),
        "buy_and_hold": simulation(np.ones(len(index))),
        "rule": simulation(rule_signal(rule, close_all)[first:]),
    }
    sims["buy_and_hold"].run()
    sims["rule"].run()
    main = sims["strategy"]
    n, chunk = main.n, int(meta["chunk_bars"])
    bridge.update(phase="simulating", percentage=SIMULATION_START_PCT, items_total=n)

    def chunk_record(done: int) -> None:
        bridge.append_metric(
            "chunk",
            {
                "bars_done": done,
                "time": int(index[done - 1].timestamp()),
                "equity": float(main.equity[done - 1]),
            },
        )

    # The lineage's chunk records so far: one per chunk from bar 0 (a resume goes on counting).
    chunks_recorded = 0
    resume = meta.get("resume")
    if isinstance(resume, dict):
        if read_state is None:
            raise BacktestError("a resumed backtest needs its saved engine state")
        restore_engine_state(main, read_state(resume), resume)
        chunks_recorded = -(-main.done // chunk)
        # The records its operation lacks (copied from the resumed run up to `offset`).
        offset = int(meta.get("resume_metrics_seq") or 0)
        for seq in range(offset, chunks_recorded):
            chunk_record(min((seq + 1) * chunk, main.done))
    saved_at = clock()

    def save_state() -> None:
        if state_dir is not None and main.done > 0:
            save_engine_state(state_dir, main, chunk_bars=chunk, metrics_seq=chunks_recorded)

    try:
        while main.done < n:
            if token.is_cancelled:
                stop = f"bar {main.done}/{n}"
                save_state()
                result = _result(sims, meta, rule, index, unscored, partial=True)
                _record_trades(bridge, sims["strategy"].trades())
                raise OperationCancelled(stop, result)
            done = main.advance(chunk)
            pct = SIMULATION_START_PCT + (100.0 - SIMULATION_START_PCT) * done / n
            bridge.update(
                percentage=pct,
                items_processed=done,
                message=f"bar {done:,}/{n:,} · equity {main.equity[done - 1]:.4f}",
            )
            chunk_record(done)
            chunks_recorded += 1
            if save_every_seconds > 0 and clock() - saved_at >= save_every_seconds and done < n:
                save_state()
                saved_at = clock()
    except OperationCancelled:
        raise
    except Exception:
        # A failure between chunks: the bars done so far are kept for a resume.
        save_state()
        raise
    result = _result(sims, meta, rule, index, unscored, partial=False)
    _record_trades(bridge, sims["strategy"].trades())
    return result


def _record_trades(bridge: Any, trades: list[dict[str, Any]]) -> None:
    for number, trade in enumerate(trades[:MAX_TRADE_RECORDS], start=1):
        bridge.append_metric("trade", {"trade": number, **trade})


def _result(
    sims: dict[str, Simulation],
    meta: dict[str, Any],
    rule: dict[str, Any],
    index: pd.DatetimeIndex,
    unscored: int,
    *,
    partial: bool,
) -> dict[str, Any]:
    summary = _summary_of(sims, meta, rule, partial=partial)
    in_sample = in_sample_check(index, meta.get("training_range"))
    warnings = []
    if in_sample["overlaps"]:
        warnings.append(
            f"in-sample: {in_sample['bars_in_training_range']:,} of {len(index):,} bars lie in the "
            f"model's training data ({in_sample['training_start'][:10]} to "
            f"{in_sample['training_end'][:10]}); its figures there are not out-of-sample"
        )
    if unscored:
        warnings.append(f"{unscored:,} bars at the start had no prediction yet (held flat)")
    if partial:
        warnings.append(
            f"cancelled: the figures cover {summary['bars_done']:,} of "
            f"{summary['bars_total']:,} bars"
        )
    return {
        "model": {"id": meta["model_id"], "label": meta["model_label"]},
        "symbol": meta["symbol"],
        "timeframe": meta["timeframe"],
        "signals": meta["signals"],
        "bars_per_year": sims["strategy"].bars_per_year,
        "in_sample": in_sample,
        "warnings": warnings,
        "unscored_bars": unscored,
        **summary,
    }
