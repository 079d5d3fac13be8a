"""The one-request refresh (`GET /api/v1/operations/{id}/refresh/`, docs/agents.md): the operation
and its new metric records in one answer that equals what the operation and metrics endpoints
answer, behind the token like every agent endpoint, with bounded parameters; on the agent read
from the run's bridge without a database query; and the backend's client, which sends one
request per refresh and falls back to the two GETs for an agent without the endpoint.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter, HTTPAdapter

from hostagents import agent_selectors
from hostagents.client import (
    METRICS_PAGE,
    REFRESH_PAGE,
    REFRESH_RECHECK_SECONDS,
    AgentClient,
    AgentNotFound,
)
from operations import selectors
from operations.bridge import ProgressBridge
from tests.fakes.workers import GatedWork, launch, wait_until
from tests.hostagents.conftest import TOKEN, AgentProcess, wait_for

REFRESH = "/api/v1/operations/{}/refresh/"


def _without_age(operation: dict[str, Any]) -> dict[str, Any]:
    # The one field that moves between two answers of the same snapshot.
    return {**operation, "freshness": {**operation["freshness"], "age_seconds": None}}


def _three_answers(agent: AgentProcess, op_id: str, **query: Any) -> tuple[dict, dict, dict]:
    """The refresh, the operation and the metrics answers for one snapshot of the agent: asked
    again until no pull landed between them (a pull moves `refreshed_at`)."""
    for _ in range(50):
        refresh = agent.get(REFRESH.format(op_id), params=query).json()
        detail = agent.operation(op_id)
        metrics = agent.get(f"/api/v1/operations/{op_id}/metrics/", params=query).json()
        after = agent.operation(op_id)
        stamps = {
            refresh["operation"]["freshness"]["refreshed_at"],
            detail["freshness"]["refreshed_at"],
            after["freshness"]["refreshed_at"],
        }
        if len(stamps) == 1:
            return refresh, detail, metrics
    raise AssertionError("no three answers of one snapshot in 50 tries")


# --- the endpoint, on a real agent --------------------------------------------------------------
@pytest.mark.slow
def test_the_refresh_needs_the_bearer_token(agent: AgentProcess):
    url = f"{agent.url}{REFRESH.format('op_x')}"
    anonymous = requests.get(url, timeout=10)
    wrong = requests.get(url, headers={"Authorization": "Bearer not-the-token"}, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert anonymous.json()["error"]["code"] == "not_authenticated"
    assert wrong.status_code == 401


@pytest.mark.slow
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"cursor": "-1"}, "cursor"),
        ({"cursor": "abc"}, "cursor"),
        ({"cursor": str(2**31)}, "cursor"),
        ({"limit": "0"}, "limit"),
        ({"limit": "5001"}, "limit"),
        ({"limit": "many"}, "limit"),
    ],
)
def test_a_bad_cursor_or_limit_is_a_400_naming_the_field(agent: AgentProcess, query, field):
    op = agent.start_work("countdown", {"steps": 1, "step_seconds": 0}).json()
    response = agent.get(REFRESH.format(op["operation_id"]), params=query)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert list(error["details"]) == [field]
    assert error["message"].startswith(f"{field}:")


@pytest.mark.slow
def test_an_unknown_operation_is_a_404_naming_it(agent: AgentProcess):
    response = agent.get(REFRESH.format("op_countdown_20260101_000000_deadbeef"))
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert error["details"] == {"operation_id": "op_countdown_20260101_000000_deadbeef"}


@pytest.mark.slow
def test_while_it_runs_the_answer_is_the_operation_and_metrics_answers_together(agent):
    op_id = agent.start_work("countdown", {"steps": 200, "step_seconds": 0.02}).json()[
        "operation_id"
    ]
    try:
        wait_for(lambda: agent.operation(op_id)["progress"]["steps_completed"] >= 3)
        for query in ({}, {"cursor": 2}, {"cursor": 1, "limit": 2}, {"cursor": 10**6}):
            refresh, detail, metrics = _three_answers(agent, op_id, **query)
            assert detail["status"] == "running"
            assert _without_age(refresh["operation"]) == _without_age(detail)
            assert refresh["metrics"] == metrics["metrics"]
            assert refresh["new_cursor"] == metrics["new_cursor"]
        assert set(refresh) == {"operation", "metrics", "new_cursor"}
    finally:
        agent.post(f"/api/v1/operations/{op_id}/cancel/", json={})


@pytest.mark.slow
def test_once_it_ended_the_answer_is_the_operation_and_metrics_answers_together(agent):
    op_id = agent.start_work("countdown", {"steps": 5, "step_seconds": 0.01}).json()["operation_id"]
    wait_for(lambda: agent.operation(op_id)["status"] == "completed")
    for query in ({}, {"cursor": 3}, {"cursor": 1, "limit": 2}, {"cursor": 5}):
        refresh, detail, metrics = _three_answers(agent, op_id, **query)
        assert _without_age(refresh["operation"]) == _without_age(detail)
        assert (refresh["metrics"], refresh["new_cursor"]) == (
            metrics["metrics"],
            metrics["new_cursor"],
        )
    everything = agent.get(REFRESH.format(op_id)).json()
    assert [r["seq"] for r in everything["metrics"]] == [0, 1, 2, 3, 4]
    assert [r["step"] for r in everything["metrics"]] == [1, 2, 3, 4, 5]
    assert everything["new_cursor"] == 5


@pytest.mark.slow
def test_the_agent_schema_documents_the_refresh(agent: AgentProcess):
    import yaml

    schema = yaml.safe_load(agent.get("/api/schema/").text)
    refresh = schema["paths"]["/api/v1/operations/{operation_id}/refresh/"]["get"]
    assert {"200", "400", "401", "404"} <= set(refresh["responses"])
    assert {p["name"] for p in refresh["parameters"]} >= {"cursor", "limit", "operation_id"}
    answer = refresh["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    component = schema["components"]["schemas"][answer.rsplit("/", 1)[-1]]
    assert set(component["required"]) == {"operation", "metrics", "new_cursor"}


# --- the agent's read, in this process -----------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_running_operation_is_answered_from_its_bridge_without_a_query(
    settings, django_assert_num_queries
):
    settings.KTRDR = {**settings.KTRDR, "OPERATIONS_CACHE_TTL": 60.0}
    work = GatedWork(metrics_before_wait=5)
    op = launch(work)
    try:
        assert work.started.wait(10)
        assert wait_until(
            lambda: (
                selectors.operation_get(
                    operation_id=op.operation_id, force_refresh=True
                ).metrics_cursor
                == 5
            )
        )
        stored = selectors.operation_metrics(operation_id=op.operation_id, cursor=1, limit=3)

        with django_assert_num_queries(0):
            page = agent_selectors.agent_refresh(operation_id=op.operation_id, cursor=1, limit=3)

        assert page.records == stored.records
        assert page.new_cursor == stored.new_cursor == 4
        assert page.operation.metrics_cursor == 5
    finally:
        work.release.set()


@pytest.mark.django_db(transaction=True)
def test_records_the_bridge_cannot_give_as_stored_are_read_from_the_database(settings):
    settings.KTRDR = {**settings.KTRDR, "OPERATIONS_CACHE_TTL": 60.0}
    work = GatedWork()
    bridge = ProgressBridge()
    # A worker that gives its own timestamp: stored through a conversion the bridge does not do.
    bridge.append_metric("step", {"recorded_at": "2026-01-02T03:04:05", "i": 0})
    op = launch(work, bridge=bridge)
    try:
        assert work.started.wait(10)
        selectors.operation_get(operation_id=op.operation_id, force_refresh=True)

        page = agent_selectors.agent_refresh(operation_id=op.operation_id)
        stored = selectors.operation_metrics(operation_id=op.operation_id)

        assert page.records == stored.records
        assert page.records[0]["recorded_at"] == "2026-01-02T03:04:05+00:00"
    finally:
        work.release.set()


# --- the backend's client ------------------------------------------------------------------------
@pytest.mark.slow
def test_one_refresh_is_one_request_that_resumes_at_the_cursor(agent: AgentProcess):
    op_id = agent.start_work("countdown", {"steps": 4, "step_seconds": 0.01}).json()["operation_id"]
    wait_for(lambda: agent.operation(op_id)["status"] == "completed")
    client = AgentClient("one", agent.url, TOKEN)

    operation, records, cursor = client.refresh(op_id, cursor=0)
    tail = client.refresh(op_id, cursor=3)

    assert operation["status"] == "completed"
    assert ([r["seq"] for r in records], cursor) == ([0, 1, 2, 3], 4)
    assert ([r["seq"] for r in tail[1]], tail[2]) == ([3], 4)
    assert client.requests_sent == {("GET", "refresh"): 2}


class WithoutRefresh(HTTPAdapter):
    """Sends the one-request refresh to a route the agent lacks, as an agent older than it
    would see it: the agent itself answers its 404 for an unknown path."""

    def __init__(self) -> None:
        super().__init__(max_retries=0)
        self.old = True

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if self.old and "/refresh/" in (request.url or ""):
            request.url = (request.url or "").replace("/refresh/", "/refresh-unknown/")
        return super().send(request, **kwargs)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.slow
def test_an_agent_without_the_endpoint_gets_the_two_gets_and_is_asked_again_later(agent):
    op_id = agent.start_work("countdown", {"steps": 3, "step_seconds": 0.01}).json()["operation_id"]
    wait_for(lambda: agent.operation(op_id)["status"] == "completed")
    clock = Clock()
    client = AgentClient("old", agent.url, TOKEN, clock=clock)
    adapter = WithoutRefresh()
    client.session.mount("http://", adapter)

    first = client.refresh(op_id, cursor=1)
    again = client.refresh(op_id, cursor=1)

    assert first[0]["operation_id"] == op_id
    assert ([r["seq"] for r in first[1]], first[2]) == ([1, 2], 3)
    assert again[1:] == first[1:]
    sent = client.requests_sent
    assert (sent[("GET", "refresh")], sent[("GET", "operation")], sent[("GET", "metrics")]) == (
        1,  # asked once; then it is known to lack it
        2,
        2,
    )

    clock.now += REFRESH_RECHECK_SECONDS + 1
    adapter.old = False  # upgraded meanwhile
    upgraded = client.refresh(op_id, cursor=1)
    assert upgraded[1:] == first[1:]
    assert (sent[("GET", "refresh")], sent[("GET", "operation")]) == (2, 2)


class Canned(BaseAdapter):
    """Answers each request with the next (status, body); records the paths asked."""

    def __init__(self, answers: list[tuple[int, Any]]) -> None:
        super().__init__()
        self.answers = list(answers)
        self.paths: list[str] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.paths.append((request.path_url or "").split("/api/v1/", 1)[-1])
        status, body = self.answers.pop(0)
        response = requests.Response()
        response.status_code = status
        response._content = json.dumps(body).encode()
        response.headers["Content-Type"] = "application/json"
        response.request = request
        return response

    def close(self) -> None:
        pass


def _canned_client(answers: list[tuple[int, Any]]) -> tuple[AgentClient, Canned]:
    session = requests.Session()
    adapter = Canned(answers)
    session.mount("http://", adapter)
    return AgentClient("canned", "http://agent.test:1", TOKEN, session=session), adapter


def _records(start: int, count: int) -> list[dict[str, Any]]:
    return [
        {"seq": s, "kind": "step", "recorded_at": "2026-01-01T00:00:00Z", "step": s}
        for s in range(start, start + count)
    ]


@pytest.mark.slow
def test_a_backlog_longer_than_the_refresh_page_continues_with_metrics_pages(agent):
    op_id = agent.start_work("countdown", {"steps": 1, "step_seconds": 0}).json()["operation_id"]
    operation = wait_for(lambda: (o := agent.operation(op_id))["status"] == "completed" and o)
    first = {"operation": operation, "metrics": _records(0, REFRESH_PAGE)}
    client, adapter = _canned_client(
        [
            (200, {**first, "new_cursor": REFRESH_PAGE}),
            (200, {"metrics": _records(REFRESH_PAGE, METRICS_PAGE), "new_cursor": 6000}),
            (200, {"metrics": _records(6000, 7), "new_cursor": 6007}),
        ]
    )

    got, records, cursor = client.refresh(op_id, cursor=0)

    assert got["operation_id"] == op_id
    assert [r["seq"] for r in records] == list(range(6007))
    assert cursor == 6007
    assert [p.split("?")[0] for p in adapter.paths] == [
        f"operations/{op_id}/refresh/",
        f"operations/{op_id}/metrics/",
        f"operations/{op_id}/metrics/",
    ]


def test_an_unknown_operation_on_an_agent_with_the_endpoint_is_not_taken_for_an_old_agent():
    missing = {
        "error": {
            "code": "not_found",
            "message": "Operation 'op_x' does not exist",
            "details": {"operation_id": "op_x"},
        }
    }
    client, adapter = _canned_client([(404, missing)])

    with pytest.raises(AgentNotFound, match="does not exist"):
        client.refresh("op_x", cursor=0)

    assert len(adapter.paths) == 1
    assert client.refresh_legacy_until == 0.0
