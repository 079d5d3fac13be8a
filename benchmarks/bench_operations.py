"""Operations core budgets: bridge writes, cached/uncached reads, bridge reads per TTL window."""

from __future__ import annotations

import statistics
import sys
import threading
import time
from pathlib import Path

if __package__ in {None, ""}:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.setup import django_ready, fmt_ms, fmt_us, median_per_call, write_cost

Row = tuple[str, str, str]


def _bridge_rows() -> list[Row]:
    """Writer cost as the worker's thread pays it: thread CPU time (`time.thread_time`, blind to
    other processes and threads taking the core), minus an empty loop of the same shape, median
    over rounds; a fresh bridge per round. GC is off while timing, as `timeit` does."""
    from operations.bridge import ProgressBridge

    def update_loop():
        update = ProgressBridge().update

        def run(n: int) -> None:
            for i in range(n):
                update(percentage=42.0, items_processed=i)

        return run

    def metric_loop():
        append = ProgressBridge().append_metric

        def run(n: int) -> None:
            for i in range(n):
                append("step", {"i": i})

        return run

    def empty(n: int) -> None:
        for _i in range(n):
            pass

    def payload_only(n: int) -> None:
        # The worker builds its payload whatever the bridge does with it.
        for i in range(n):
            {"i": i}  # noqa: B018

    update_s = write_cost(update_loop, empty)
    metric_s = write_cost(metric_loop, payload_only)
    return [
        ("bridge.update() median per call (thread CPU)", fmt_us(update_s), "≤ 0.25 µs"),
        ("bridge.append_metric() median per call (thread CPU)", fmt_us(metric_s), "≤ 0.25 µs"),
    ]


class _Gate:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()

    def __call__(self, ctx):
        ctx.bridge.update(percentage=50.0, message="benchmark")
        self.started.set()
        while not self.release.wait(0.01):
            ctx.token.raise_if_cancelled("gate")
        return {}


def _read_rows() -> list[Row]:
    from django.conf import settings

    from operations import selectors
    from operations.bridge import ProgressBridge
    from operations.execution import operation_launch
    from operations.kinds import Launch

    settings.KTRDR = {**settings.KTRDR, "OPERATIONS_CACHE_TTL": 3600.0}
    gate, bridge = _Gate(), ProgressBridge()
    op = operation_launch(
        operation_type="bench", launch=Launch(work=gate, bridge=bridge, metadata={})
    )
    gate.started.wait(10)
    op_id = op.operation_id
    selectors.operation_get(operation_id=op_id, force_refresh=True)

    hit = median_per_call(lambda: selectors.operation_get(operation_id=op_id), calls=500, rounds=15)
    miss_samples = []
    for _ in range(200):
        t0 = time.perf_counter()
        selectors.operation_get(operation_id=op_id, force_refresh=True)
        miss_samples.append(time.perf_counter() - t0)
    miss = statistics.median(miss_samples)

    # 10 readers polling every TTL window for 10 windows.
    ttl = 0.5
    settings.KTRDR = {**settings.KTRDR, "OPERATIONS_CACHE_TTL": ttl}
    time.sleep(ttl)
    reads_before = bridge.bridge_reads
    gets = 0
    lock = threading.Lock()
    windows = 10
    start = time.monotonic()
    stop_at = start + windows * ttl
    touched: set[int] = set()

    def reader(offset: float) -> None:
        nonlocal gets
        from django.db import connection

        time.sleep(offset)
        while time.monotonic() < stop_at:
            selectors.operation_get(operation_id=op_id)
            with lock:
                gets += 1
                touched.add(int((time.monotonic() - start) / ttl))
            time.sleep(ttl / 2)
        connection.close()

    threads = [threading.Thread(target=reader, args=(i * ttl / 10,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reads = bridge.bridge_reads - reads_before
    gate.release.set()
    from operations.local import local_runs

    local_runs.wait_idle(10)
    # Windows any reader touched (the edges of the run can add one).
    per_window = reads / max(len(touched), 1)
    hit_rate = 1 - reads / max(gets, 1)
    return [
        ("operation_get cache hit (median)", fmt_ms(hit), "< 1 ms"),
        ("operation_get local miss, force_refresh (median)", fmt_ms(miss), "< 10 ms"),
        (
            "bridge reads per TTL window, 10 readers",
            f"{per_window:.2f} ({reads} reads / {gets} gets, hit rate {hit_rate:.1%})",
            "≤ 1 per window, hit rate ≥ 90 %",
        ),
    ]


def run() -> list[Row]:
    django_ready()
    return _bridge_rows() + _read_rows()


if __name__ == "__main__":
    from benchmarks.__main__ import print_table

    print_table("operations", run())
