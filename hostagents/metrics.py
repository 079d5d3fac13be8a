"""Prometheus metrics of the host-agent machinery (docs/monitoring.md).

Defined here, recorded by `AgentClient` (every request to an agent, by agent, endpoint and
outcome, and its latency; the bytes of inputs and artifacts it moves) and by the agent's own
views (bytes it serves and receives). Agent reachability is read from the registry at scrape
time by `AgentsCollector`, which `HostagentsConfig.ready()` registers with `operations.metrics`:
it is the last health someone pulled (nothing polls agents for it, docs/architecture.md §1).
Label values are bounded: agent names come from the registry, endpoints from the client's fixed
set of request kinds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from hostagents.models import Agent
from operations.metrics import LATENCY_BUCKETS

AGENT_REQUESTS = Counter(
    "ktrdr_agent_requests",
    "Requests the backend sent to an agent, by agent, endpoint (the client's request kind) and "
    "outcome: ok, rejected (4xx), server_error (5xx), unreachable, timeout, skipped (the agent "
    "is in its backoff after a timeout or a refused connection and was not contacted).",
    ["agent", "endpoint", "outcome"],
)
AGENT_REQUEST_SECONDS = Histogram(
    "ktrdr_agent_request_duration_seconds",
    "Seconds from sending a request to an agent to its answer's headers, by agent and endpoint.",
    ["agent", "endpoint"],
    buckets=LATENCY_BUCKETS,
)
ARTIFACT_BYTES = Counter(
    "ktrdr_artifact_bytes",
    "Artifact bytes moved: received (fetched and verified by this backend) or sent (served by "
    "this agent).",
    ["direction"],
)
INPUT_BYTES = Counter(
    "ktrdr_input_bytes",
    "Input blob bytes moved: sent (uploaded by this backend) or received (stored by this agent).",
    ["direction"],
)


def outcome_of_status(status: int) -> str:
    if status >= 500:
        return "server_error"
    if status >= 400:
        return "rejected"
    return "ok"


class AgentsCollector:
    """`ktrdr_agent_up{agent}` and the age of the health it is based on, from the registry."""

    def __init__(self, clock=time.time) -> None:
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "ktrdr_agent_up",
            "1 when the agent's last pulled health succeeded, 0 when it failed or never ran "
            "(disabled agents are not listed).",
            labels=["agent"],
        )
        age = GaugeMetricFamily(
            "ktrdr_agent_health_age_seconds",
            "Seconds since the agent's health was last pulled.",
            labels=["agent"],
        )
        now = self.clock()
        for agent in Agent.objects.filter(enabled=True).order_by("name"):
            up.add_metric([agent.name], 1 if agent.reachable else 0)
            if agent.health_pulled_at is not None:
                age.add_metric([agent.name], max(now - agent.health_pulled_at.timestamp(), 0.0))
        yield up
        yield age
