"""Market-data figures and budgets: IB load throughput through the simulator (pacing off), store
read time and size on disk, CSV import against pandas alone, a window read from a large series
against a small one, and IB request plans against the fewest requests IB's limits allow.

`python benchmarks/bench_marketdata.py` (sets Django up on a temporary KTRDR_HOME) or
`python -m benchmarks marketdata`. `run()` assumes only a configured, migrated Django; it puts
its bars in a temporary DATA_DIR it creates and removes.

Ratios are measured in one run, both sides interleaved round by round (so a busy machine slows
both alike), as medians of CPU time (`time.process_time`: blind to other processes on the
cores) unless said otherwise.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in {None, ""}:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

Row = tuple[str, str, str]
LOAD_ROUNDS = 3
READ_ROUNDS = 7
IMPORT_ROUNDS = 5
WINDOW_ROUNDS = 41
IMPORT_BARS = 186_000
BIG_SERIES_BARS = 1_000_000
WINDOW_BARS = 2_000
# Budgets (docs/marketdata.md, "Figures").
IMPORT_BUDGET = 3.0
WINDOW_BUDGET = 1.5
PLAN_BUDGET = 1.10
SHARED_DATA = (
    Path(
        os.environ.get("KTRDR_SHARED_DIR") or Path(__file__).resolve().parents[1].parent / "shared"
    )
    / "data"
)


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


# --- CSV import against pandas.read_csv + one Parquet write ----------------------------------
def _minute_csv(folder: Path) -> tuple[Path, str]:
    """A CSV of IMPORT_BARS 1m bars in the shared data's layout, and where it came from: the
    first such rows of a 1m file in shared/data when there is one, else EURUSD bars from the
    synthetic source with one minute in 600 missing (real minute data has holes: the import's
    gap analysis then has hundreds of breaks to classify, not only the weekends)."""
    import numpy as np
    import pandas as pd

    from marketdata.synthetic import generate_bars
    from marketdata.timeframes import TIMEFRAMES

    path = folder / "minutes.csv"
    shared = sorted(SHARED_DATA.glob("*_1m.csv")) if SHARED_DATA.is_dir() else []
    if shared:
        with shared[0].open() as source, path.open("w") as out:
            for i, line in enumerate(source):
                if i > IMPORT_BARS:
                    break
                out.write(line)
        return path, f"{shared[0].name}, first {IMPORT_BARS:,} rows"
    frame = generate_bars(
        "EURUSD", TIMEFRAMES["1m"], pd.Timestamp("2023-01-02", tz="UTC"),
        pd.Timestamp("2023-09-01", tz="UTC"),
    )  # fmt: skip
    keep = np.random.default_rng(7).random(len(frame)) >= 1 / 600
    frame = frame[keep].iloc[:IMPORT_BARS]
    out = frame.copy()
    out.index = out.index.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.index.name = "timestamp"
    out.to_csv(path)
    return path, "synthetic EURUSD 1m in the shared layout, 1 minute in 600 missing"


def _import_ratio(csv: Path, symbol: str, timeframe: str, folder: Path) -> tuple[float, float]:
    """(median import CPU seconds, median baseline CPU seconds): `services.bars_import_csv` of
    the file into an empty series against `pandas.read_csv` of it plus one Parquet write of the
    result (zstd, as the store writes)."""
    import pandas as pd
    from django.conf import settings as django_settings
    from django.test import override_settings

    from marketdata import services
    from marketdata.models import BarSeries

    data = csv.read_bytes()
    imports, baselines = [], []
    for i in range(IMPORT_ROUNDS):
        t0 = time.process_time()
        pd.read_csv(csv).to_parquet(folder / f"baseline{i}.parquet", compression="zstd")
        baselines.append(time.process_time() - t0)
        BarSeries.objects.filter(symbol=symbol, timeframe=timeframe).delete()
        knobs = {**django_settings.KTRDR, "DATA_DIR": folder / f"import{i}"}
        with override_settings(KTRDR=knobs):
            t0 = time.process_time()
            services.bars_import_csv(data=data, symbol=symbol, timeframe=timeframe)
            imports.append(time.process_time() - t0)
    BarSeries.objects.filter(symbol=symbol, timeframe=timeframe).delete()
    return statistics.median(imports), statistics.median(baselines)


def _import_rows(folder: Path) -> list[Row]:
    rows = []
    minutes, origin = _minute_csv(folder)
    cases = [(f"CSV import {IMPORT_BARS // 1000}k 1m bars vs read_csv+parquet", minutes, "1m",
              origin)]  # fmt: skip
    real = SHARED_DATA / "EURUSD_1h.csv"
    if real.is_file():
        cases.append(("CSV import of the real EURUSD 1h file vs read_csv+parquet", real, "1h",
                      "shared/data/EURUSD_1h.csv, 74,439 bars"))  # fmt: skip
    for what, csv, timeframe, origin in cases:
        imported, baseline = _import_ratio(csv, "EURUSD", timeframe, folder)
        ratio = imported / baseline
        rows.append(
            (
                what,
                f"{ratio:.2f}x",
                f"≤ {IMPORT_BUDGET:g}x {'ok' if ratio <= IMPORT_BUDGET else 'OVER'} (median of "
                f"{IMPORT_ROUNDS}, CPU: import {imported:.3f} s vs {baseline:.3f} s; {origin})",
            )
        )
    return rows


# --- a window of 2,000 bars from a 1M-bar series against a 2,000-bar series -------------------
def _bar_frame(n: int):
    """`n` valid 1m bars (a random walk), end-aligned with any other `n`: only the read is
    compared, so the bars need no calendar."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(3)
    close = np.round(1.1 * np.exp(np.cumsum(rng.standard_normal(n) * 2e-4)), 5)
    open_ = np.concatenate([[close[0]], close[:-1]])
    wick = np.round(np.abs(rng.standard_normal(n)) * 2e-4, 5)
    index = pd.date_range(end="2024-01-01", periods=n, freq="1min", tz="UTC", name="timestamp")
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) + wick,
            "low": np.minimum(open_, close) - wick,
            "close": close,
            "volume": rng.integers(0, 500, n).astype("float64"),
        },
        index=index.as_unit("ns"),
    )


def _interleaved(big: Callable[[], object], small: Callable[[], object], rounds: int, clock):
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for fn, into in ((big, samples[0]), (small, samples[1])):
            t0 = clock()
            fn()
            into.append(clock() - t0)
    return statistics.median(samples[0]), statistics.median(samples[1])


def _window_rows(folder: Path) -> list[Row]:
    import pyarrow.parquet as pq
    from django.conf import settings as django_settings
    from django.contrib.auth import get_user_model
    from django.test import override_settings
    from rest_framework.test import APIClient

    from marketdata import selectors, store
    from marketdata.models import BarSeries

    frame = _bar_frame(BIG_SERIES_BARS)
    knobs = {**django_settings.KTRDR, "DATA_DIR": folder}
    with override_settings(KTRDR=knobs):
        store.write_bars("EURUSD", "1m", frame, source="synthetic")
        store.write_bars("GBPUSD", "1m", frame.iloc[-WINDOW_BARS:], source="synthetic")
        big_file = store.series_path("EURUSD", "1m")
        footer = pq.ParquetFile(big_file).metadata
        decoded = footer.row_group(footer.num_row_groups - 1).num_rows

        def window(symbol: str) -> Callable[[], object]:
            return lambda: selectors.bars_window(symbol=symbol, timeframe="1m", limit=WINDOW_BARS)

        # The first read of a file parses its footer; a process keeps it (`store._footer`).
        cold = time.process_time()
        window("EURUSD")()
        cold = time.process_time() - cold
        window("GBPUSD")()
        big, small = _interleaved(
            window("EURUSD"), window("GBPUSD"), WINDOW_ROUNDS, time.process_time
        )
        user, _ = get_user_model().objects.get_or_create(username="bench-reader")
        client = APIClient()
        client.force_authenticate(user)

        def answer(symbol: str) -> Callable[[], object]:
            url = f"/api/v1/data/series/{symbol}/1m/?limit={WINDOW_BARS}"
            return lambda: client.get(url)

        api_big, api_small = _interleaved(answer("EURUSD"), answer("GBPUSD"), 9, time.process_time)
        BarSeries.objects.filter(timeframe="1m").delete()
    ratio = big / small
    return [
        (
            f"series page/bars API read of {WINDOW_BARS:,} bars from a 1M-bar file vs a "
            f"{WINDOW_BARS:,}-bar file",
            f"{ratio:.2f}x",
            f"≤ {WINDOW_BUDGET:g}x {'ok' if ratio <= WINDOW_BUDGET else 'OVER'} (median of "
            f"{WINDOW_ROUNDS}, CPU, `selectors.bars_window`: {big * 1e3:.2f} ms vs "
            f"{small * 1e3:.2f} ms; decodes {decoded:,} of {BIG_SERIES_BARS:,} bars; first read "
            f"with the footer {cold * 1e3:.1f} ms; whole API answer {api_big * 1e3:.1f} ms vs "
            f"{api_small * 1e3:.1f} ms)",
        )
    ]


# --- IB request plans against the fewest requests IB's limits allow ---------------------------
def _fewest_requests(times, longest) -> int:
    """The fewest requests of at most `longest` reaching every expected bar (greedy cover,
    optimal for points on a line), computed apart from the planner."""
    import numpy as np
    import pandas as pd

    stamps = times.as_unit("ns").asi8
    count = i = 0
    while i < len(stamps):
        count += 1
        reach = longest.end_from(pd.Timestamp(int(stamps[i]), tz="UTC"))
        i = int(np.searchsorted(stamps, reach.value, side="left"))
    return count


def _plan_rows() -> list[Row]:
    import pandas as pd

    from marketdata.calendar import expected_bar_times
    from marketdata.planner import plan_segments
    from marketdata.timeframes import TIMEFRAMES, ib_duration_problem, parse_ib_duration

    end = pd.Timestamp("2024-03-06", tz="UTC")
    spans = {"1 day": pd.DateOffset(days=1), "1 month": pd.DateOffset(months=1),
             "1 year": pd.DateOffset(years=1), "5 years": pd.DateOffset(years=5)}  # fmt: skip
    worst, worst_case, cases, too_long, requests = 0.0, "", 0, 0, {}
    for asset_class in ("forex", "stock"):
        for tf in TIMEFRAMES.values():
            for span, offset in spans.items():
                start = end - offset
                plan = plan_segments([(start, end)], tf, asset_class)
                fewest = _fewest_requests(
                    expected_bar_times(asset_class, tf, start, end), tf.ib_longest
                )
                too_long += sum(
                    ib_duration_problem(parse_ib_duration(s.ib_duration), tf.ib_bar_size)
                    is not None
                    for s in plan
                )
                cases += 1
                ratio = len(plan) / fewest if fewest else 1.0
                requests[(asset_class, tf.name, span)] = (len(plan), fewest)
                if ratio > worst:
                    worst, worst_case = ratio, f"{asset_class} {tf.name} {span}"
    m1 = requests[("forex", "1m", "1 year")]
    return [
        (
            "IB plan requests vs minimum (worst over the table)",
            f"{worst:.2f}x",
            f"≤ {PLAN_BUDGET:.2f}x {'ok' if worst <= PLAN_BUDGET else 'OVER'} ({cases} cases: 7 "
            f"timeframes x forex/stock x 1 day, 1 month, 1 year, 5 years; worst {worst_case}; "
            f"durations past IB's longest: {too_long}; 1y forex 1m: {m1[0]} requests, fewest "
            f"{m1[1]})",
        )
    ]


def run() -> list[Row]:
    tmp = Path(tempfile.mkdtemp(prefix="ktrdr-bench-md-"))
    try:
        loads = []
        for i in range(LOAD_ROUNDS):
            loads.append(_load_year_through_simulator(tmp / f"load{i}"))
        seconds = statistics.median(s for s, _, _ in loads)
        bars, requests = loads[0][1], loads[0][2]
        read_s, read_n, size = _store_figures(tmp / "store")
        (tmp / "import").mkdir()
        import_rows = _import_rows(tmp / "import")
        window_rows = _window_rows(tmp / "window")
        plan_rows = _plan_rows()
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
        *import_rows,
        *window_rows,
        *plan_rows,
    ]


if __name__ == "__main__":
    from benchmarks.setup import django_ready

    django_ready()
    from benchmarks.__main__ import print_table

    print_table("marketdata", run())
