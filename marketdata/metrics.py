"""Prometheus metrics of market-data loading from Interactive Brokers (docs/monitoring.md).

Counters recorded by the IB gateway (each request and how it ended, the pacing violations IB
reported) and by the loader (waits for the pacing window, which only paced sources, i.e. IB,
have). The pacing budget in use is read from the endpoint's shared ledger at scrape time by
`IBPacingCollector`, so it is the same figure whichever process is scraped; it is registered
with `operations.metrics` in `MarketdataConfig.ready()`. Plain Python: no Django here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric

IB_REQUESTS = Counter(
    "ktrdr_ib_requests",
    "Requests sent to IB, by request (qualify, head_timestamp, historical_data) and outcome "
    "(ok, no_data, pacing_violation, timeout, cancelled, error).",
    ["request", "outcome"],
)
IB_PACING_VIOLATIONS = Counter(
    "ktrdr_ib_pacing_violations",
    "Pacing violations IB reported (errors 162, 100, 420), by request.",
    ["request"],
)
IB_PACING_WAITS = Counter(
    "ktrdr_ib_pacing_waits", "Times a load waited for room in the IB pacing window."
)
IB_PACING_WAIT_SECONDS = Counter(
    "ktrdr_ib_pacing_wait_seconds", "Seconds loads spent waiting for the IB pacing window."
)

# (endpoint label "host:port", requests in the current window, the window's limit), or None
# when this process has no IB endpoint configured.
BudgetReader = Callable[[], tuple[str, int, int] | None]


class IBPacingCollector:
    """`ktrdr_ib_pacing_requests_in_window` and `ktrdr_ib_pacing_limit` of this process's IB
    endpoint, read from its shared pacing ledger at scrape time."""

    def __init__(self, read_budget: BudgetReader) -> None:
        self.read_budget = read_budget

    def collect(self) -> Iterator[Metric]:
        budget = self.read_budget()
        if budget is None:
            return
        endpoint, used, limit = budget
        in_window = GaugeMetricFamily(
            "ktrdr_ib_pacing_requests_in_window",
            "Historical-data requests in IB's current pacing window (10 minutes), every process "
            "sharing the endpoint's ledger counted.",
            labels=["endpoint"],
        )
        in_window.add_metric([endpoint], used)
        ceiling = GaugeMetricFamily(
            "ktrdr_ib_pacing_limit", "Requests IB allows per pacing window.", labels=["endpoint"]
        )
        ceiling.add_metric([endpoint], limit)
        yield in_window
        yield ceiling
