"""Market-data figures: IB load throughput through the simulator (pacing off), store read time
and size on disk per 100,000 bars.

`python benchmarks/bench_marketdata.py` (sets Django up on a temporary KTRDR_HOME) or
`python -m benchmarks marketdata`. `run()` assumes only a configured, migrated Django; it puts
its bars in a temporary DATA_DIR it creates and removes.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in {None, ""}:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

Row = tuple[str, str, str]
LOAD_ROUNDS = 3
READ_ROUNDS = 7


def _load_year_through_simulator(data_dir: Path) -> tuple[float, int, int]:
    """(seconds, bars, requests) for one full load of a year of EURUSD 1h bars."""
    from django.conf import settings as django_settings
    from django.test import override_settings

    from marketdata.ibsim.server import IBGatewaySimulator, SimulatorThread
    from marketdata.loader import run_data_load
    from marketdata.progress import DataLoadingProgressBridge
    from marketdata.services import validate_load_params
    from operations.cancellation import CancellationToken
    from operations.local import WorkContext

    sim = IBGatewaySimulator(port=0, enforce_pacing=False)
    with SimulatorThread(sim):
        knobs = {
            **django_settings.KTRDR,
            "DATA_DIR": data_dir,
            "IB_HOST": "127.0.0.1",
            "IB_PORT": sim.port,
            "IB_PACING": False,
        }
        with override_settings(KTRDR=knobs):
            metadata = validate_load_params(
                symbol="EURUSD", timeframe="1h", start="2023-01-01", end="2024-01-01",
                mode="full", source="ib",
            )  # fmt: skip
            ctx = WorkContext(
                operation_id="bench",
                metadata=metadata,
                bridge=DataLoadingProgressBridge(),
                token=CancellationToken(),
            )
            started = time.perf_counter()
            summary = run_data_load(ctx)
            elapsed = time.perf_counter() - started
    return elapsed, summary["bars_received"], sim.stats.historical_requests


def _store_figures(data_dir: Path) -> tuple[float, int, int]:
    """(median read seconds, bars read, file bytes) for a 100,000-bar series."""
    import pandas as pd
    from django.conf import settings as django_settings
    from django.test import override_settings

    from marketdata import store
    from marketdata.synthetic import generate_bars
    from marketdata.timeframes import TIMEFRAMES

    knobs = {**django_settings.KTRDR, "DATA_DIR": data_dir}
    with override_settings(KTRDR=knobs):
        frame = generate_bars(
            "EURUSD", TIMEFRAMES["5m"], pd.Timestamp("2021-01-01", tz="UTC"),
            pd.Timestamp("2023-01-01", tz="UTC"),
        ).iloc[:100_000]  # fmt: skip
        store.write_bars("EURUSD", "5m", frame, source="synthetic")
        samples = []
        for _ in range(READ_ROUNDS):
            t0 = time.perf_counter()
            bars = store.read_bars("EURUSD", "5m")
            samples.append(time.perf_counter() - t0)
        size = store.series_path("EURUSD", "5m").stat().st_size
    return statistics.median(samples), len(bars), size


def run() -> list[Row]:
    tmp = Path(tempfile.mkdtemp(prefix="ktrdr-bench-md-"))
    try:
        loads = []
        for i in range(LOAD_ROUNDS):
            loads.append(_load_year_through_simulator(tmp / f"load{i}"))
        seconds = statistics.median(s for s, _, _ in loads)
        bars, requests = loads[0][1], loads[0][2]
        read_s, read_n, size = _store_figures(tmp / "store")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    per_100k = size * 100_000 / read_n
    return [
        (
            "load 1y EURUSD 1h via simulator (pacing off)",
            f"{bars / seconds:,.0f} bars/s",
            f"median of {LOAD_ROUNDS}: {bars} bars, {requests} requests, {seconds:.2f} s",
        ),
        (
            "read 100,000 bars from the store",
            f"{read_s * 1e3:.1f} ms",
            f"median of {READ_ROUNDS} (Parquet, zstd)",
        ),
        ("size on disk per 100,000 bars", f"{per_100k / 1e6:.2f} MB", "OHLCV float64, zstd"),
    ]


if __name__ == "__main__":
    from benchmarks.setup import django_ready

    django_ready()
    from benchmarks.__main__ import print_table

    print_table("marketdata", run())
