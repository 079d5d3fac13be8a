"""Training budgets: progress + cancellation overhead vs a bare torch loop, a 10-epoch run on
50,000 samples, a 10-epoch run of the shipped `rsi_macd_zigzag` strategy on all of the shared
EURUSD 1h bars, and the TrainingProgressBridge write cost (docs/architecture.md §8).

Runs on the real EURUSD 1h bars from ../shared/data when they are there (a synthetic random walk
otherwise). `python benchmarks/bench_training.py [--device auto|cpu|cuda]` or
`python -m benchmarks training`; the device defaults to `KTRDR_BENCH_DEVICE` or `auto` (CUDA when
present). On an accelerator the bare loop is timed twice: as the executor runs (loss left on the
device) and with a `loss.item()` sync per batch, to show what that sync costs.
"""

from __future__ import annotations

import copy
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in {None, ""}:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import pandas as pd

from benchmarks.setup import fmt_us, write_cost

Row = tuple[str, str, str]
SHARED_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "EURUSD_1h.csv"
STRATEGIES_DIR = Path(__file__).resolve().parents[1] / "strategies"
SAMPLES = 50_000
ROUNDS = 15  # interleaved executor/bare pairs; medians reported
DEVICE = os.environ.get("KTRDR_BENCH_DEVICE", "auto")

STRATEGY = {
    "name": "bench",
    "training_data": {"symbols": ["EURUSD"], "timeframes": ["1h"]},
    "indicators": {
        "rsi_14": {"type": "rsi", "period": 14},
        "macd": {"type": "macd"},
        "atr_14": {"type": "atr", "period": 14},
        "roc_6": {"type": "roc", "period": 6},
    },
    "fuzzy_sets": {
        "rsi_zone": {
            "input": "rsi_14",
            "sets": {
                "low": {"type": "trapezoidal", "parameters": [0, 0, 30, 45]},
                "high": {"type": "trapezoidal", "parameters": [55, 70, 100, 100]},
            },
        }
    },
    "model_inputs": ["rsi_zone.low", "rsi_zone.high", "macd.histogram", "atr_14", "roc_6"],
    "labels": {"type": "forward_return", "horizon": 12, "threshold": 0.002},
    "split": {"train": 0.8, "validation": 0.1, "test": 0.1},
    "model": {
        "hidden_layers": [32, 16],
        "dropout": 0.1,
        "training": {"epochs": 10, "batch_size": 256, "early_stopping": None, "seed": 1},
    },
}


def _bars() -> tuple[pd.DataFrame, str]:
    if SHARED_CSV.is_file():
        frame = pd.read_csv(SHARED_CSV)
        frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("timestamp"), utc=True))
        return frame.astype(float), "EURUSD 1h (real)"
    rng = np.random.default_rng(0)
    n = 80_000
    close = 1.2 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    spread = np.abs(rng.normal(0, 0.0005, n))
    index = pd.date_range("2005-01-01", periods=n, freq="h", tz="UTC")
    frame = pd.DataFrame(
        {
            "open": close,
            "high": close + spread,
            "low": close - spread,
            "close": close,
            "volume": 0.0,
        },
        index=index,
    )
    return frame, "synthetic random walk"


def _executor(bars: pd.DataFrame, models_dir: Path, **kwargs):
    from training.executor import TrainingExecutor
    from training.strategy import validate_strategy

    def load(symbol, timeframe, start, end):
        return bars

    return TrainingExecutor(
        config=validate_strategy(copy.deepcopy(STRATEGY)),
        models_dir=models_dir,
        load_bars=load,
        run_id="bench",
        device=DEVICE,
        **kwargs,
    )


def _bare_epochs(
    prepared: dict, epochs: int, batch_size: int, *, sync_per_batch: bool | None = None
) -> float:
    """The same model, data, optimiser and per-batch arithmetic, without bridge or token.

    `sync_per_batch` (default: on the CPU only, as the executor) reads the loss every batch.
    """
    import torch
    from torch import nn

    from training.executor import FUSED_OPTIMIZER_DEVICES

    model = prepared["model"]
    device = next(model.parameters()).device
    if sync_per_batch is None:
        sync_per_batch = device.type == "cpu"
    gen = torch.Generator().manual_seed(1)
    x, y = prepared["tensors"]["train"]
    xv, yv = prepared["tensors"]["validation"]
    n = int(y.shape[0])
    batches = math.ceil(n / batch_size)
    fused = device.type in FUSED_OPTIMIZER_DEVICES or None
    opt = torch.optim.Adam(model.parameters(), lr=0.001, fused=fused)
    crit = nn.CrossEntropyLoss(weight=prepared["class_weights"])
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n, generator=gen).to(device)
        x_epoch, y_epoch = x[order], y[order]
        predicted = torch.empty(n, dtype=torch.int64, device=device)
        loss_sum: object = 0.0 if sync_per_batch else torch.zeros((), device=device)
        for b in range(batches):
            lo = b * batch_size
            hi = min(lo + batch_size, n)
            xb, yb = x_epoch[lo:hi], y_epoch[lo:hi]
            opt.zero_grad(set_to_none=True)
            logits = model(xb)
            loss = crit(logits, yb)
            loss.backward()
            opt.step()
            if sync_per_batch:
                loss_sum += loss.item() * (hi - lo)
            else:
                loss_sum.add_(loss.detach(), alpha=hi - lo)
            torch.argmax(logits, 1, out=predicted[lo:hi])
        float(loss_sum)
        int((predicted == y_epoch).sum())
        model.eval()
        with torch.no_grad():
            logits = model(xv)
            float(crit(logits, yv))
            float((logits.argmax(1) == yv).float().mean())
    return time.perf_counter() - t0


def _overhead_rows(bars: pd.DataFrame, source: str) -> list[Row]:
    """Interleaved pairs: executor training loop vs bare loop on identical prepared tensors."""
    from training.bridge import TrainingProgressBridge

    with tempfile.TemporaryDirectory() as tmp:
        ex = _executor(bars.iloc[: SAMPLES + 400], Path(tmp), save=False)
        loaded = ex._load()
        per_symbol, _ = ex._features(loaded, ex._indicators(loaded))
        prepared = ex._prepare(ex._split(per_symbol))
    n = len(prepared["tensors"]["train"][1])
    epochs = 3
    ex.config["model"]["training"]["epochs"] = epochs
    batch = ex.config["model"]["training"]["batch_size"]
    exec_rates, bare_rates, synced_rates = [], [], []
    on_cpu = ex.device.type == "cpu"
    for r in range(ROUNDS):
        # Alternate which goes first so drift (thermal, a neighbour's job) hits both alike.
        order = ("exec", "bare") if r % 2 == 0 else ("bare", "exec")
        for which in order:
            if which == "exec":
                ex.bridge = TrainingProgressBridge()
                ex.history = []
                seconds = ex._train(prepared)["seconds"]
                exec_rates.append(n * epochs / seconds)
            else:
                bare_rates.append(n * epochs / _bare_epochs(prepared, epochs, batch))
                if not on_cpu:
                    seconds = _bare_epochs(prepared, epochs, batch, sync_per_batch=True)
                    synced_rates.append(n * epochs / seconds)
    exec_med, bare_med = statistics.median(exec_rates), statistics.median(bare_rates)
    overhead = 100.0 * (1.0 - exec_med / bare_med)
    # The machinery's own per-batch cost, timed in isolation (stable where wall time is noisy).
    per_batch_machinery = _per_batch_machinery_seconds()
    batch_seconds = batch / exec_med
    rows = [
        (f"training data ({source})", f"{n} train samples", f"batch {batch}, MLP [32, 16]"),
        ("device", ex.device_label, "--device / KTRDR_BENCH_DEVICE"),
        ("executor loop, samples/s (median)", f"{exec_med:,.0f}", f"{ROUNDS} interleaved rounds"),
        ("bare torch loop, samples/s (median)", f"{bare_med:,.0f}", "same data/model/optimiser"),
    ]
    if synced_rates:
        synced_med = statistics.median(synced_rates)
        rows.append(
            (
                "bare loop + loss.item() per batch",
                f"{synced_med:,.0f}",
                f"{100.0 * (1.0 - synced_med / bare_med):+.1f} % vs no per-batch sync",
            )
        )
    return [
        *rows,
        ("progress + cancel overhead (wall)", f"{overhead:+.2f} %", "≤ 1 % (noise ± ~1 %)"),
        (
            "progress + cancel cost per batch",
            f"{fmt_us(per_batch_machinery)} = {100 * per_batch_machinery / batch_seconds:.3f} %",
            "≤ 1 % of a batch",
        ),
    ]


def _per_batch_machinery_seconds(calls: int = 200_000) -> float:
    """What the executor adds per batch: the token check and the on_batch write."""
    from operations.cancellation import CancellationToken
    from training.bridge import TrainingProgressBridge

    bridge = TrainingProgressBridge()
    on_batch, token = bridge.on_batch, CancellationToken()
    samples = []
    for _ in range(9):
        t0 = time.perf_counter()
        for b in range(calls):
            if token.is_cancelled:
                raise RuntimeError
            on_batch(1, b, 0.5)
        t1 = time.perf_counter()
        for _b in range(calls):
            pass
        t2 = time.perf_counter()
        samples.append(((t1 - t0) - (t2 - t1)) / calls)
    return statistics.median(samples)


def _run_rows(bars: pd.DataFrame) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        ex = _executor(bars.iloc[: SAMPLES + 400], Path(tmp))
        t0 = time.perf_counter()
        result = ex.run()
        wall = time.perf_counter() - t0
    samples = sum(result["data"]["samples"].values())
    return [
        (
            f"10-epoch run, {samples:,} samples (all steps)",
            f"{wall:.2f} s",
            f"train {result['training']['seconds']:.2f} s, "
            f"{result['training']['samples_per_second']:,.0f} samples/s "
            f"on {result['training']['device']}",
        )
    ]


def _empty_loop(n: int) -> None:
    for _i in range(n):
        pass


def _bridge_rows() -> list[Row]:
    from training.bridge import TrainingProgressBridge

    def batch_loop():
        on_batch = TrainingProgressBridge().on_batch

        def run(n: int) -> None:
            for i in range(n):
                on_batch(3, i, 0.6931)

        return run

    def epoch_loop():
        on_epoch = TrainingProgressBridge().on_epoch

        def run(n: int) -> None:
            for i in range(n):
                on_epoch(i, 0.69, 0.5, 0.7, 0.48, 0.001, 1.2, 3, 2)

        return run

    def metric_loop():
        append = TrainingProgressBridge().append_metric

        def run(n: int) -> None:
            for i in range(n):
                append("step", {"i": i})

        return run

    def payload_loop(n: int) -> None:
        # The worker builds its payload whatever the bridge does with it.
        for i in range(n):
            {"i": i}  # noqa: B018

    budget = "≤ 0.25 µs"
    return [
        (
            "bridge on_batch median per call (thread CPU)",
            fmt_us(write_cost(batch_loop, _empty_loop)),
            budget,
        ),
        (
            "bridge on_epoch median per call (thread CPU)",
            fmt_us(write_cost(epoch_loop, _empty_loop)),
            budget,
        ),
        (
            "bridge append_metric median per call (thread CPU)",
            fmt_us(write_cost(metric_loop, payload_loop)),
            budget,
        ),
    ]


def _strategy_run_rows(rounds: int = 3) -> list[Row]:
    """The shipped `rsi_macd_zigzag` strategy, 10 epochs, on every row of the shared EURUSD 1h
    file, through the executor as a worker runs it (torch already imported by the warm-up)."""
    from training.executor import TrainingExecutor
    from training.strategy import read_strategy_file
    from training.warmup import torch_ready

    what = "10-epoch rsi_macd_zigzag on EURUSD_1h (all rows), wall"
    if not SHARED_CSV.is_file():
        return [(what, "skipped", f"≤ 6 s (no {SHARED_CSV})")]
    strategy = read_strategy_file(STRATEGIES_DIR / "rsi_macd_zigzag.yaml")
    if strategy.config is None:
        return [(what, "failed", f"≤ 6 s ({strategy.error})")]
    bars, _source = _bars()
    torch_ready()
    walls, cpus, result = [], [], None
    for _ in range(rounds):
        config = copy.deepcopy(strategy.config)
        config["training_data"]["history"] = {"start": None, "end": None}
        config["model"]["training"]["epochs"] = 10
        # Ten epochs every time: early stopping would end some rounds sooner than others.
        config["model"]["training"]["early_stopping"] = None
        with tempfile.TemporaryDirectory() as tmp:
            ex = TrainingExecutor(
                config=config,
                models_dir=Path(tmp),
                load_bars=lambda symbol, timeframe, start, end: bars,
                run_id="bench_strategy",
                device=DEVICE,
            )
            t0, c0 = time.perf_counter(), time.process_time()
            result = ex.run()
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    assert result is not None
    samples = result["data"]["samples"]
    test = result["metrics"]["test"]
    return [
        (
            what,
            f"{statistics.median(walls):.2f} s",
            f"≤ 6 s (median of {rounds}; CPU {statistics.median(cpus):.2f} s; "
            f"{result['training']['epochs_run']} epochs, {sum(samples.values()):,} samples, "
            f"test accuracy {test['accuracy']:.3f} on {result['training']['device']})",
        )
    ]


def run() -> list[Row]:
    import torch

    from training.model import torch_threads

    torch.set_num_threads(torch_threads())
    bars, source = _bars()
    return _bridge_rows() + _overhead_rows(bars, source) + _run_rows(bars) + _strategy_run_rows()


if __name__ == "__main__":
    if "--device" in sys.argv:
        DEVICE = sys.argv[sys.argv.index("--device") + 1]
    for what, figure, note in run():
        print(f"{what:<48} {figure:<22} {note}")
