"""The System page's figures, derived from the metrics, and its last hour of samples.

Everything here is computed from one `operations.metrics.Scrape` — the same figures `/metrics`
answers, summed over the processes — so the page and Prometheus never disagree. Rates need two
points in time: `SystemHistory` keeps a bounded ring of compact samples (one per
`KTRDR_SYSTEM_SAMPLE_SECONDS`, at most an hour of them) in this process's memory, taken when
someone looks (the page's polls, a scrape of /metrics); nothing samples in the background
(docs/architecture.md §1). So the chart covers the time the page was open or Prometheus scraped
this process, and a restarted process starts an empty hour (docs/monitoring.md, System page).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from operations.conf import ktrdr_setting
from operations.metrics import SampleKey, refresh_budget

HOUR = 3600.0
# The rates on the cards compare now with the sample closest to this many seconds ago.
WINDOW_SECONDS = 60.0
ACTIVE = ("pending", "running", "cancelling")


def _labels(key: SampleKey) -> dict[str, str]:
    return dict(key[1])


def compact(values: dict[SampleKey, float]) -> dict[str, float]:
    """The counters a rate is computed from, as flat keys: a sample stays small (≈ 100 floats)
    whatever the label sets."""
    out: dict[str, float] = {}

    def add(key: str, value: float) -> None:
        out[key] = out.get(key, 0.0) + value

    for (name, labels), value in values.items():
        ls = dict(labels)
        if name == "ktrdr_read_cache_lookups_total":
            add(f"cache:{ls.get('result', '')}", value)
        elif name == "ktrdr_refreshes_total":
            add("refreshes", value)
            add(f"refreshes:{ls.get('place', '')}", value)
        elif name == "ktrdr_refresh_duration_seconds_bucket":
            add(f"rbucket:{ls.get('place', '')}:{ls.get('le', '')}", value)
            add(f"rbucket:*:{ls.get('le', '')}", value)
        elif name == "ktrdr_agent_requests_total":
            add(f"areq:{ls.get('agent', '')}", value)
            if ls.get("outcome") != "ok":
                add(f"aerr:{ls.get('agent', '')}", value)
        elif name == "ktrdr_agent_request_duration_seconds_bucket":
            add(f"abucket:{ls.get('agent', '')}:{ls.get('le', '')}", value)
        elif name in ("ktrdr_agent_request_duration_seconds_sum",):
            add(f"asum:{ls.get('agent', '')}", value)
        elif name in ("ktrdr_agent_request_duration_seconds_count",):
            add(f"acount:{ls.get('agent', '')}", value)
        elif name == "ktrdr_training_samples_total":
            add("training_samples", value)
    return out


def quantile(q: float, buckets: dict[str, float]) -> float | None:
    """The q-quantile of a cumulative histogram {le: count}, interpolated inside its bucket as
    Prometheus' `histogram_quantile` does; None without observations."""
    bounds = sorted((math.inf if le == "+Inf" else float(le), n) for le, n in buckets.items())
    if not bounds or bounds[-1][1] <= 0:
        return None
    total = bounds[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in bounds:
        if count >= rank:
            if math.isinf(upper):
                return lower  # beyond the last finite bound: that bound is all we know
            inside = count - below
            return lower + (upper - lower) * ((rank - below) / inside if inside > 0 else 1.0)
        lower, below = upper, count
    return lower


def _delta(now: dict[str, float], then: dict[str, float] | None, key: str) -> float:
    # A process that ended takes its counts with it: never a negative rate.
    return max(now.get(key, 0.0) - (then or {}).get(key, 0.0), 0.0)


def _buckets(now: dict[str, float], then: dict[str, float] | None, prefix: str) -> dict:
    return {key[len(prefix) :]: _delta(now, then, key) for key in now if key.startswith(prefix)}


@dataclass
class Sample:
    at: float
    counters: dict[str, float]
    # What the chart draws for this sample (rates since the previous one).
    point: dict[str, Any] = field(default_factory=dict)


class SystemHistory:
    """The last hour of samples of this process, one per interval at most (thread-safe)."""

    def __init__(self, *, clock: Callable[[], float] = time.time, span: float = HOUR) -> None:
        self.clock = clock
        self.span = span
        self._lock = threading.Lock()
        # Bounded twice: by age (an hour), and by count (an hour at one sample per second).
        self._samples: deque[Sample] = deque(maxlen=int(span) + 1)

    def interval(self) -> float:
        return max(float(ktrdr_setting("SYSTEM_SAMPLE_SECONDS", 10.0)), 1.0)

    def observe(self, values: dict[SampleKey, float]) -> Sample | None:
        """Keep a sample of `values` unless the last one is younger than the interval; returns
        the sample kept (None: too soon)."""
        now = self.clock()
        counters = compact(values)
        with self._lock:
            last = self._samples[-1] if self._samples else None
            if last is not None and now - last.at < self.interval():
                return None
            sample = Sample(at=now, counters=counters)
            sample.point = chart_point(sample, last, gauges(values), self.interval())
            self._samples.append(sample)
            while self._samples and now - self._samples[0].at > self.span:
                self._samples.popleft()
            return sample

    def samples(self) -> list[Sample]:
        with self._lock:
            return list(self._samples)

    def since(self, at: float) -> list[Sample]:
        return [s for s in self.samples() if s.at > at]

    def reference(self, now: float, window: float = WINDOW_SECONDS) -> Sample | None:
        """The newest sample at least `window` old, else the oldest one (None: no sample)."""
        samples = self.samples()
        older = [s for s in samples if now - s.at >= window]
        if older:
            return older[-1]
        return samples[0] if samples and samples[0].at < now else None

    def clear(self) -> None:
        with self._lock:
            self._samples.clear()


history = SystemHistory()


def gauges(values: dict[SampleKey, float]) -> dict[str, Any]:
    """The figures that are a level, not a rate: read as they are now."""
    g: dict[str, Any] = {
        "busy": 0.0,
        "queued": 0.0,
        "pool_size": 0.0,
        "samples_per_second": 0.0,
        "operations": {},
        "active": 0,
        "agents": {},
        "ib": [],
        "collectors_down": [],
    }
    ib: dict[str, dict[str, float]] = {}
    for key, value in values.items():
        name, ls = key[0], _labels(key)
        if name == "ktrdr_worker_pool_busy":
            g["busy"] += value
        elif name == "ktrdr_worker_pool_queued":
            g["queued"] += value
        elif name == "ktrdr_worker_pool_size":
            g["pool_size"] += value
        elif name == "ktrdr_training_samples_per_second":
            g["samples_per_second"] += value
        elif name == "ktrdr_operations":
            g["operations"][ls["status"]] = g["operations"].get(ls["status"], 0) + int(value)
            if ls["status"] in ACTIVE:
                g["active"] += int(value)
        elif name == "ktrdr_agent_up":
            g["agents"].setdefault(ls["agent"], {})["up"] = bool(value)
        elif name == "ktrdr_agent_health_age_seconds":
            g["agents"].setdefault(ls["agent"], {})["health_age"] = value
        elif name == "ktrdr_ib_pacing_requests_in_window":
            ib.setdefault(ls["endpoint"], {})["used"] = value
        elif name == "ktrdr_ib_pacing_limit":
            ib.setdefault(ls["endpoint"], {})["limit"] = value
        elif name == "ktrdr_collector_up" and not value:
            g["collectors_down"].append(ls["collector"])
    for endpoint, b in sorted(ib.items()):
        used, limit = int(b.get("used", 0)), int(b.get("limit", 0))
        g["ib"].append(
            {
                "endpoint": endpoint,
                "used": used,
                "limit": limit,
                "percent": round(100.0 * used / limit, 1) if limit else 0.0,
            }
        )
    return g


def chart_point(
    sample: Sample, previous: Sample | None, levels: dict[str, Any], interval: float
) -> dict[str, Any]:
    """One point of the page's charts: rates since the previous sample (none after a gap
    longer than three intervals: nobody looked then, and the chart shows the gap)."""
    point: dict[str, Any] = {
        "kind": "sample",
        "t": round(sample.at, 3),
        "busy": levels["busy"],
        "queued": levels["queued"],
        "hit_rate": None,
        "refresh_rate": None,
        "p95_ms": None,
    }
    if previous is None or sample.at - previous.at > 3 * interval:
        return point
    seconds = sample.at - previous.at
    now, then = sample.counters, previous.counters
    hits, misses = _delta(now, then, "cache:hit"), _delta(now, then, "cache:miss")
    if hits + misses:
        point["hit_rate"] = round(hits / (hits + misses), 4)
    point["refresh_rate"] = round(_delta(now, then, "refreshes") / seconds, 3)
    p95 = quantile(0.95, _buckets(now, then, "rbucket:*:"))
    point["p95_ms"] = None if p95 is None else round(1000 * p95, 2)
    return point


@dataclass
class SystemFigures:
    """What the System page shows."""

    window_seconds: float | None
    hit_rate: float | None
    lookups: int
    refresh_rate: float | None
    refreshes_per_op_per_ttl: float | None
    ttl: float
    latency: list[dict[str, Any]]
    agents: list[dict[str, Any]]
    levels: dict[str, Any]
    points: list[dict[str, Any]]
    sampled_at: float


def figures(values: dict[SampleKey, float], *, keep: SystemHistory = history) -> SystemFigures:
    """The page's figures now, the rates over about the last minute (since this process's
    first sample when it has none that old, or since its start with none at all)."""
    keep.observe(values)
    now_at = keep.clock()
    now = compact(values)
    ref = keep.reference(now_at)
    then = ref.counters if ref is not None else None
    seconds = now_at - ref.at if ref is not None else None
    levels = gauges(values)
    hits, misses = _delta(now, then, "cache:hit"), _delta(now, then, "cache:miss")
    refreshes = _delta(now, then, "refreshes")
    refresh_rate = refreshes / seconds if seconds else None
    ttl = float(ktrdr_setting("OPERATIONS_CACHE_TTL"))
    per_op = None
    if refresh_rate is not None and levels["active"]:
        per_op = refresh_rate * ttl / levels["active"]
    places = sorted({k.split(":")[1] for k in now if k.startswith("rbucket:")} - {"*"})
    latency = []
    for place in places:
        buckets = _buckets(now, then, f"rbucket:{place}:")
        count = buckets.get("+Inf", 0.0)
        p50, p95 = quantile(0.5, buckets), quantile(0.95, buckets)
        latency.append(
            {
                "place": place,
                "count": int(count),
                "p50_ms": None if p50 is None else 1000 * p50,
                "p95_ms": None if p95 is None else 1000 * p95,
                "budget_ms": 1000 * refresh_budget(place),
            }
        )
    agent_names = sorted(
        set(levels["agents"]) | {k.split(":", 1)[1] for k in now if k.startswith("areq:")}
    )
    agents = []
    for name in agent_names:
        count = _delta(now, then, f"acount:{name}")
        total = _delta(now, then, f"asum:{name}")
        p95 = quantile(0.95, _buckets(now, then, f"abucket:{name}:"))
        state = levels["agents"].get(name, {})
        agents.append(
            {
                "name": name,
                "up": state.get("up"),
                "health_age": state.get("health_age"),
                "requests": int(_delta(now, then, f"areq:{name}")),
                "errors": int(_delta(now, then, f"aerr:{name}")),
                "mean_ms": 1000 * total / count if count else None,
                "p95_ms": None if p95 is None else 1000 * p95,
            }
        )
    return SystemFigures(
        window_seconds=seconds,
        hit_rate=hits / (hits + misses) if hits + misses else None,
        lookups=int(hits + misses),
        refresh_rate=refresh_rate,
        refreshes_per_op_per_ttl=per_op,
        ttl=ttl,
        latency=latency,
        agents=agents,
        levels=levels,
        points=[s.point for s in keep.samples()],
        sampled_at=now_at,
    )
