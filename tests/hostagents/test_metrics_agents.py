"""Metrics across the backend ↔ agent boundary, against real agent processes on loopback: the
backend counts its requests by agent, endpoint and outcome, the refreshes and the artifact
bytes it fetched; the agent counts the run and the bytes it served; each `/metrics` is refused
without credentials."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from hostagents import selectors as agent_selectors
from hostagents import services as agent_services
from tests.hostagents.conftest import TOKEN, AgentProcess, free_port
from tests.hostagents.test_remote import fetched, follow, register, start_remote_countdown
from tests.scrape import parse, value

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SCRAPE_TOKEN = "agent-tests-scrape-token-0123456789"


@pytest.fixture
def scraping(backend_settings: Any) -> Any:
    backend_settings.KTRDR = {**backend_settings.KTRDR, "METRICS_TOKEN": SCRAPE_TOKEN}
    return backend_settings


def backend_scrape(client: Any) -> dict:
    resp = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {SCRAPE_TOKEN}")
    assert resp.status_code == 200, resp.content[:300]
    return parse(resp.content)


def agent_scrape(agent: AgentProcess, token: str = TOKEN) -> dict:
    resp = requests.get(
        f"{agent.url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert resp.status_code == 200, resp.text[:300]
    return parse(resp.text)


def test_a_remote_run_moves_the_counters_on_both_sides(scraping, api, client, agent):
    register(agent, "m1")
    size = 50_000
    backend_before, agent_before = backend_scrape(client), agent_scrape(agent)

    started = start_remote_countdown(api, "m1", steps=3, step_seconds=0.05, artifact_bytes=size)
    follow(api, started["operation_id"])
    fetched(started["operation_id"])
    body, _ = follow(api, started["operation_id"])
    assert body["status"] == "completed", body

    backend_after, agent_after = backend_scrape(client), agent_scrape(agent)

    def backend_moved(name: str, **labels: str) -> float:
        return value(backend_after, name, **labels) - value(backend_before, name, **labels)

    def agent_moved(name: str, **labels: str) -> float:
        return value(agent_after, name, **labels) - value(agent_before, name, **labels)

    assert (
        backend_moved("ktrdr_agent_requests_total", agent="m1", endpoint="start", outcome="ok") == 1
    )
    assert (
        backend_moved("ktrdr_agent_requests_total", agent="m1", endpoint="refresh", outcome="ok")
        >= 1
    )
    assert (
        backend_moved("ktrdr_agent_requests_total", agent="m1", endpoint="artifact", outcome="ok")
        == 1
    )
    assert backend_moved("ktrdr_agent_request_duration_seconds_count", agent="m1") >= 3
    assert backend_moved("ktrdr_refreshes_total", place="agent", outcome="ok") >= 1
    assert backend_moved("ktrdr_refresh_duration_seconds_count", place="agent") >= 1
    assert backend_moved("ktrdr_artifact_bytes_total", direction="received") == size
    assert value(backend_after, "ktrdr_agent_up", agent="m1") == 1
    # The agent ran it: its own counters say so, and it served the artifact's bytes.
    assert agent_moved("ktrdr_operation_starts_total", kind="countdown") == 1
    assert agent_moved("ktrdr_operation_ends_total", kind="countdown", outcome="completed") == 1
    assert agent_moved("ktrdr_artifact_bytes_total", direction="sent") == size
    assert value(agent_after, "ktrdr_operations", kind="countdown", status="completed") >= 1


def test_an_agent_that_does_not_answer_is_counted_unreachable_and_down(scraping, client):
    agent, _ = agent_services.agent_add(name="gone1", base_url=f"http://127.0.0.1:{free_port()}")
    before = backend_scrape(client)
    agent_selectors.agent_pull_health(agent, force=True)
    after = backend_scrape(client)
    moved = value(
        after, "ktrdr_agent_requests_total", agent="gone1", endpoint="health", outcome="unreachable"
    ) - value(
        before,
        "ktrdr_agent_requests_total",
        agent="gone1",
        endpoint="health",
        outcome="unreachable",
    )
    assert moved >= 1
    assert value(after, "ktrdr_agent_up", agent="gone1") == 0


def test_an_agents_metrics_are_refused_without_a_token(agent):
    resp = requests.get(f"{agent.url}/metrics", timeout=10)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = requests.get(
        f"{agent.url}/metrics", headers={"Authorization": "Bearer not-it-0123456789"}, timeout=10
    )
    assert wrong.status_code == 401
    assert "ktrdr_" not in wrong.text
    assert value(agent_scrape(agent), "ktrdr_collector_up", collector="operations") == 1


def test_an_agent_also_takes_its_own_metrics_token(agent_factory):
    agent = agent_factory("scraped", env={"KTRDR_METRICS_TOKEN": SCRAPE_TOKEN})
    assert (
        value(agent_scrape(agent, SCRAPE_TOKEN), "ktrdr_collector_up", collector="operations") == 1
    )
    assert value(agent_scrape(agent, TOKEN), "ktrdr_collector_up", collector="operations") == 1
