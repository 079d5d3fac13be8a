"""Prometheus metrics of the operations engine, and what `/metrics` answers (docs/monitoring.md).

Recorded where the events happen, never on a worker's hot path (bridge updates, batches):

* services — starts, ends by outcome, cancel requests (after commit, so a rolled-back write
  counts nothing);
* selectors — read-path cache hits and misses, refreshes by place and outcome, and their
  latency (`RefreshObserver`, which also logs a refresh slower than its place's budget);
* local — the worker pool's busy and queued runs.

Other apps define their own metrics (hostagents, marketdata, training) and register collectors
that read their state at scrape time with `register_collector`; this module imports no app.

Every backend (and agent) process runs in prometheus_client's multiprocess mode: the folder is
set by the settings before prometheus_client is imported, each process writes its samples to
memory-mapped files there, and a scrape of any process sums them. Gauges say how they combine
(`multiprocess_mode`); `prune_dead_processes` removes the files of processes that are gone.
Figures that live in the database (operations by kind and status) are read at scrape time by a
collector, so they are right whichever process is scraped.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol

from django.db.models import Count
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from operations.conf import ktrdr_setting
from operations.models import Operation

logger = logging.getLogger(__name__)

# Seconds; from a bridge pull (sub-millisecond) to an agent refresh near its deadline.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

OPERATION_STARTS = Counter(
    "ktrdr_operation_starts", "Operations that started running, by kind.", ["kind"]
)
OPERATION_ENDS = Counter(
    "ktrdr_operation_ends",
    "Operations that ended, by kind and outcome (completed, failed, cancelled).",
    ["kind", "outcome"],
)
CANCEL_REQUESTS = Counter(
    "ktrdr_operation_cancel_requests", "Cancel requests recorded on an operation.", ["kind"]
)
READ_CACHE = Counter(
    "ktrdr_read_cache_lookups",
    "Reads through the one read path, by whether the TTL cache answered (hit) or not (miss).",
    ["result"],
)
# Bound once: a cached read is the read path's hot case, and `labels()` costs as much as `inc()`.
READ_HITS = READ_CACHE.labels("hit")
READ_MISSES = READ_CACHE.labels("miss")
REFRESHES = Counter(
    "ktrdr_refreshes",
    "Refreshes of an operation from its place (local: a bridge pull; agent: an agent request), "
    "by outcome (ok, error).",
    ["place", "outcome"],
)
REFRESH_SECONDS = Histogram(
    "ktrdr_refresh_duration_seconds",
    "How long one refresh took (pull and store), by place.",
    ["place"],
    buckets=LATENCY_BUCKETS,
)
SLOW_REFRESHES = Counter(
    "ktrdr_slow_refreshes",
    "Refreshes slower than their place's budget (KTRDR_REFRESH_BUDGET_*), by place.",
    ["place"],
)
# Summed over the live processes: a process that is gone stops counting at once.
POOL_BUSY = Gauge(
    "ktrdr_worker_pool_busy",
    "Local runs executing on a worker thread.",
    multiprocess_mode="livesum",
)
POOL_QUEUED = Gauge(
    "ktrdr_worker_pool_queued",
    "Local runs waiting for a worker thread.",
    multiprocess_mode="livesum",
)
POOL_SIZE = Gauge(
    "ktrdr_worker_pool_size",
    "Worker threads of the local pools (KTRDR_LOCAL_WORKERS per process that made one).",
    multiprocess_mode="livesum",
)


# --- refresh latency and its budget -------------------------------------------------------------
def refresh_budget(place: str) -> float:
    """The budget of one refresh at `place` in seconds (0: not checked)."""
    if place in ("local", "gone"):
        return float(ktrdr_setting("REFRESH_BUDGET_LOCAL", 0.05))
    return float(ktrdr_setting("REFRESH_BUDGET_AGENT", 0.5))


class RefreshObserver:
    """Times a refresh, records it, and warns when it took longer than its place's budget.

    `clock` is injectable (tests step it); the read path uses the module's `refresh_observer`."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock

    def start(self) -> float:
        return self.clock()

    def done(self, *, operation_id: str, place: str, started: float, ok: bool) -> float:
        seconds = max(self.clock() - started, 0.0)
        REFRESHES.labels(place, "ok" if ok else "error").inc()
        REFRESH_SECONDS.labels(place).observe(seconds)
        budget = refresh_budget(place)
        if budget > 0 and seconds > budget:
            SLOW_REFRESHES.labels(place).inc()
            logger.warning(
                "slow refresh: operation %s at place %s took %.3f s, over its budget of %.3f s",
                operation_id,
                place,
                seconds,
                budget,
            )
        return seconds


refresh_observer = RefreshObserver()


# --- scraping ------------------------------------------------------------------------------------
class Collector(Protocol):
    def collect(self) -> Iterable[Metric]: ...


_collectors: dict[str, Collector] = {}


def register_collector(name: str, collector: Collector) -> None:
    """Add a collector read at every scrape (an app's state: agents, the IB pacing budget).
    Registered in the app's `AppConfig.ready()`; a second one under a name replaces the first."""
    _collectors[name] = collector


class OperationsCollector:
    """`ktrdr_operations{kind, status}` from the database at scrape time: right across
    processes, and nothing to keep up to date on any write.

    The count scans the table. A scrape of /metrics counts afresh (`max_age` 0); the System
    page's polls accept a count up to a second old, so however many viewers poll, they cost one
    query per second per process."""

    def __init__(self, *, max_age: float = 0.0, clock: Callable[[], float] = time.monotonic):
        self.max_age = max_age
        self.clock = clock
        self._counted: tuple[float, list[tuple[str, str, int]]] | None = None

    def counts(self) -> list[tuple[str, str, int]]:
        now = self.clock()
        if self._counted is not None and now - self._counted[0] < self.max_age:
            return self._counted[1]
        rows = Operation.objects.values_list("operation_type", "status").annotate(n=Count("id"))
        counted = [(kind, status, int(n)) for kind, status, n in rows.order_by()]
        self._counted = (now, counted)
        return counted

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "ktrdr_operations",
            "Operations in the database, by kind and status.",
            labels=["kind", "status"],
        )
        for kind, status, n in self.counts():
            family.add_metric([kind, status], n)
        yield family


# Fresh at every scrape of /metrics; up to a second old for the System page (its polls).
_operations = OperationsCollector()
_operations_memo = OperationsCollector(max_age=1.0)


class _Guarded:
    """A collector whose failure (the database down) costs its own figures only: the scrape
    still answers, and `ktrdr_collector_up{collector}` says which part is missing."""

    def __init__(self, collectors: dict[str, Collector]) -> None:
        self._collectors = collectors

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "ktrdr_collector_up",
            "1 when the collector read its state at this scrape, 0 when it failed.",
            labels=["collector"],
        )
        for name, collector in self._collectors.items():
            try:
                families = list(collector.collect())
            except Exception as exc:
                logger.warning("metrics collector %s failed: %s: %s", name, type(exc).__name__, exc)
                up.add_metric([name], 0)
                continue
            up.add_metric([name], 1)
            yield from families
        yield up


def scrape_registry(*, memo: bool = False) -> CollectorRegistry:
    """Every process's samples (the multiprocess files) and the registered collectors; `memo`:
    operation counts up to a second old will do (the System page)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=metrics_dir())
    counts = _operations_memo if memo else _operations
    registry.register(_Guarded({"operations": counts, **_collectors}))
    return registry


class Scrape:
    """One collection of `scrape_registry`: its text (for /metrics) and its values (for the
    System page), from the same read."""

    def __init__(self, *, memo: bool = False) -> None:
        try:
            self.families = list(scrape_registry(memo=memo).collect())
        except FileNotFoundError:
            # A starting process pruned a dead one's file between the listing and the read.
            self.families = list(scrape_registry(memo=memo).collect())

    def collect(self) -> list[Metric]:
        return self.families

    def text(self) -> bytes:
        """The Prometheus text format."""
        return generate_latest(self)  # type: ignore[arg-type]

    def values(self) -> dict[SampleKey, float]:
        """{(sample name, sorted labels): value}, summed over what differs only by pid."""
        values: dict[SampleKey, float] = {}
        for family in self.families:
            for sample in family.samples:
                labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "pid"))
                key = (sample.name, labels)
                values[key] = values.get(key, 0.0) + sample.value
        return values


SampleKey = tuple[str, tuple[tuple[str, str], ...]]


# --- the multiprocess folder ------------------------------------------------------------------
def metrics_dir() -> str:
    return os.environ["PROMETHEUS_MULTIPROC_DIR"]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def prune_dead_processes(path: str | Path | None = None) -> list[str]:
    """Remove the files of processes that are gone (called at every process start).

    Live gauges of a dead pid go as prometheus_client's `mark_process_dead` says; its counters
    and histograms go too, so the folder holds the files of live processes plus those that ended
    since the last start (a management command is a process as well). Returns the names
    removed."""
    folder = Path(path or metrics_dir())
    removed: list[str] = []
    dead: set[int] = set()
    for file in folder.glob("*.db"):
        try:
            pid = int(file.stem.rsplit("_", 1)[1])
        except (IndexError, ValueError):
            continue
        if pid == os.getpid() or _pid_alive(pid):
            continue
        dead.add(pid)
    for pid in dead:
        files = list(folder.glob(f"*_{pid}.db"))
        multiprocess.mark_process_dead(pid, str(folder))
        for file in files:
            file.unlink(missing_ok=True)
            removed.append(file.name)
    return removed
