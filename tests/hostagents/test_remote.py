"""Remote operations end to end: backend (test client, this process) ↔ real agent processes.

Each test states one rule of docs/architecture.md §6 and checks it against a real
`run_agent` subprocess on a loopback port.
"""

from __future__ import annotations

import hashlib
import io
import signal
import threading
import time
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter

from hostagents import services as agent_services
from hostagents.client import client_for, reset_clients
from hostagents.models import Agent, Artifact
from hostagents.place import FETCH_PHASE, fetches_in_flight
from operations.countdown import countdown_artifact_bytes
from operations.models import Operation
from tests.hostagents.conftest import SERVED_REFRESH, AgentProcess, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TERMINAL = {"completed", "failed", "cancelled"}


def register(agent: AgentProcess, name: str = "a1") -> Agent:
    registered, _ = agent_services.agent_add(name=name, base_url=agent.url)
    return registered


def start_remote_countdown(api: Any, name: str = "a1", **params: Any) -> dict[str, Any]:
    response = api.post(f"/api/v1/agents/{name}/countdown/", params, format="json")
    assert response.status_code == 202, response.content
    return response.json()


def get_op(api: Any, operation_id: str, **query: Any) -> dict[str, Any]:
    response = api.get(f"/api/v1/operations/{operation_id}/", query)
    assert response.status_code == 200, response.content
    return response.json()


def follow(api: Any, operation_id: str, timeout: float = 20.0) -> tuple[dict, list[dict]]:
    """Poll like a client until the operation ends; returns the last answer and all answers."""
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = get_op(api, operation_id)
        seen.append(body)
        if body["status"] in TERMINAL:
            return body, seen
        time.sleep(0.05)
    raise AssertionError(f"{operation_id} did not end: {seen[-1]}")


def all_metrics(api: Any, operation_id: str) -> list[dict]:
    response = api.get(f"/api/v1/operations/{operation_id}/metrics/", {"cursor": 0})
    assert response.status_code == 200
    return response.json()["metrics"]


def wait_agent_status(agent: AgentProcess, remote_id: str, statuses: set[str]) -> dict:
    def ended() -> dict | None:
        op = agent.operation(remote_id)
        return op if op["status"] in statuses else None

    return wait_for(ended)


def fetched(operation_id: str) -> None:
    """Wait until this process has no background fetch of the operation's results running."""
    wait_for(lambda: operation_id not in fetches_in_flight(), timeout=60)


def keys_of(value: Any) -> Any:
    """The key structure of an answer; free-form objects (metadata, context, results) are
    leaves, since what is in them is the work's business, not the API's."""
    if isinstance(value, dict):
        return {
            k: None if k in {"metadata", "context", "result_summary"} else keys_of(v)
            for k, v in value.items()
        }
    return None


def test_local_and_agent_runs_give_clients_the_same_experience(backend_settings, api, agent):
    register(agent)
    local = api.post("/api/v1/operations/countdown/", {"steps": 6, "step_seconds": 0.05})
    assert local.status_code == 202
    remote = start_remote_countdown(api, steps=6, step_seconds=0.05)

    local_final, local_seen = follow(api, local.json()["operation_id"])
    remote_final, remote_seen = follow(api, remote["operation_id"])

    # Same answer shape at every poll, same end, same phases reported on the way.
    assert keys_of(local_final) == keys_of(remote_final)
    assert all(keys_of(b) == keys_of(local_final) for b in local_seen + remote_seen)
    assert local_final["status"] == remote_final["status"] == "completed"
    assert local_final["progress"]["percentage"] == 100
    assert remote_final["progress"]["percentage"] == 100
    assert set(local_final["result_summary"]) == set(remote_final["result_summary"])
    local_phases = {b["progress"]["phase"] for b in local_seen} - {""}
    remote_phases = {b["progress"]["phase"] for b in remote_seen} - {""}
    assert remote_phases <= local_phases | {"counting"}
    assert "counting" in local_phases | remote_phases
    assert local_final["result_summary"]["steps"] == 6
    assert remote_final["result_summary"]["steps"] == 6
    # Metrics complete and identical in form: seq 0..5, one per step, same fields.
    local_metrics = all_metrics(api, local_final["operation_id"])
    remote_metrics = all_metrics(api, remote_final["operation_id"])
    assert [m["seq"] for m in local_metrics] == [m["seq"] for m in remote_metrics] == list(range(6))
    assert [m["step"] for m in remote_metrics] == list(range(1, 7))
    assert [set(m) for m in local_metrics] == [set(m) for m in remote_metrics]
    assert local_final["location"]["executor"] == "local"
    assert remote_final["location"]["executor"] == "agent"


def test_clients_use_the_backend_id_which_differs_from_the_agent_id(backend_settings, api, agent):
    register(agent)
    started = start_remote_countdown(api, steps=3, step_seconds=0.05)
    backend_id = started["operation_id"]
    final, _ = follow(api, backend_id)
    remote_id = final["location"]["remote_operation_id"]
    assert remote_id
    assert remote_id != backend_id
    assert final["location"]["agent"] == "a1"
    # The agent does not know the backend id; clients never need the agent's.
    assert agent.get(f"/api/v1/operations/{backend_id}/").status_code == 404
    assert api.get(f"/api/v1/operations/{backend_id}/results/").json()["result_summary"]["steps"]
    listed = api.get("/api/v1/operations/").json()["operations"]
    assert backend_id in {op["operation_id"] for op in listed}
    assert remote_id not in {op["operation_id"] for op in listed}


def test_three_clients_polling_within_one_ttl_window_cause_one_agent_request(
    backend_settings, api, agent, django_user_model
):
    from rest_framework.test import APIClient

    register(agent)
    started = start_remote_countdown(api, steps=50, step_seconds=0.1)
    op_id = started["operation_id"]
    backend_settings.KTRDR = {**backend_settings.KTRDR, "OPERATIONS_CACHE_TTL": 30.0}
    client = client_for(Agent.objects.get(name="a1"))
    before_client = client.requests_sent[("GET", "refresh")]
    before_agent = agent.served().get(SERVED_REFRESH, 0)

    readers = [APIClient() for _ in range(3)]
    for reader in readers:
        reader.force_authenticate(api.user)
    bodies = [get_op(reader, op_id) for reader in readers for _ in range(2)]

    assert client.requests_sent[("GET", "refresh")] - before_client == 1
    assert agent.served()[SERVED_REFRESH] - before_agent == 1
    assert len({b["progress"]["percentage"] for b in bodies}) == 1
    api.post(f"/api/v1/operations/{op_id}/cancel/", {"reason": "done"}, format="json")


def test_tracking_starts_no_background_threads_but_one_results_fetch(
    backend_settings, api, agent, monkeypatch
):
    register(agent)
    started_threads: list[threading.Thread] = []
    original_start = threading.Thread.start

    def spy(self: threading.Thread) -> None:
        started_threads.append(self)
        original_start(self)

    before = {t.ident for t in threading.enumerate()}
    monkeypatch.setattr(threading.Thread, "start", spy)
    started = start_remote_countdown(api, steps=4, step_seconds=0.05, artifact_bytes=1000)
    final, seen = follow(api, started["operation_id"])
    api.get(f"/api/v1/operations/{started['operation_id']}/metrics/")
    monkeypatch.undo()

    assert final["status"] == "completed"
    assert len(seen) > 1
    # Polling starts nothing; the look that saw the agent's completion started one fetch.
    assert [t.name for t in started_threads] == [f"agent-fetch-{started['operation_id']}"]
    fetched(started["operation_id"])
    assert {t.ident for t in threading.enumerate()} <= before


def test_completion_on_the_agent_is_noticed_only_when_someone_reads(backend_settings, api, agent):
    register(agent)
    size = 300_000
    started = start_remote_countdown(api, steps=3, step_seconds=0.05, artifact_bytes=size)
    op_id = started["operation_id"]
    remote_id = Operation.objects.get(operation_id=op_id).remote_operation_id
    wait_agent_status(agent, remote_id, {"completed"})
    time.sleep(0.6)  # well past both TTLs: nobody looked, so nothing may have changed

    row = Operation.objects.get(operation_id=op_id)
    assert row.status in {"pending", "running"}
    assert not Artifact.objects.filter(operation_id=op_id).exists()

    body = get_op(api, op_id)  # the read that discovers it starts the fetch...
    assert body["status"] in {"running", "completed"}
    if body["status"] == "running":
        assert body["progress"]["phase"] == FETCH_PHASE
    fetched(op_id)
    body = get_op(api, op_id)  # ...whose outcome the next one shows

    assert body["status"] == "completed"
    expected = hashlib.sha256(countdown_artifact_bytes(remote_id, size)).hexdigest()
    stored = Artifact.objects.get(operation_id=op_id, name="countdown.bin")
    assert stored.sha256 == expected
    with open(stored.path, "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == expected
    assert len(all_metrics(api, op_id)) == 3
    download = api.get(f"/api/v1/operations/{op_id}/artifacts/countdown.bin")
    assert download.status_code == 200
    assert download["X-Content-SHA256"] == expected
    assert int(download["Content-Length"]) == size


def test_cancel_through_the_backend_stops_the_agent_run_within_one_step(
    backend_settings, api, agent
):
    register(agent)
    # Steps far longer than the test waits: it can end only if the cancel cuts a step short.
    started = start_remote_countdown(api, steps=200, step_seconds=60)
    op_id = started["operation_id"]
    wait_for(lambda: get_op(api, op_id)["status"] == "running")
    remote_id = Operation.objects.get(operation_id=op_id).remote_operation_id

    response = api.post(f"/api/v1/operations/{op_id}/cancel/", {"reason": "stop"}, format="json")
    assert response.status_code == 202
    assert response.json()["status"] in {"cancelling", "cancelled"}
    on_agent = wait_agent_status(agent, remote_id, {"cancelled"})
    final, _ = follow(api, op_id)

    assert final["status"] == "cancelled"
    assert on_agent["result_summary"]["steps_done"] == 0  # step 1's wait was cut short
    assert on_agent["result_summary"]["stopped_at"] == "step 1/200"
    assert final["cancel"]["reason"] == "stop"
    assert final["result_summary"]["steps_done"] == on_agent["result_summary"]["steps_done"]


class LoseFirstStartAnswer(HTTPAdapter):
    """Delivers the first start to the agent, then loses its answer (as a dropped link would)."""

    def __init__(self) -> None:
        super().__init__(max_retries=0)
        self.lost = 0

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        response = super().send(request, **kwargs)
        if request.method == "POST" and "/starts/" in (request.url or "") and not self.lost:
            self.lost += 1
            response.close()
            raise requests.ConnectionError("answer lost on the way back")
        return response


def test_a_retried_start_starts_one_run(backend_settings, api, agent):
    registered = register(agent)
    client = client_for(registered)
    adapter = LoseFirstStartAnswer()
    client.session.mount("http://", adapter)
    before = agent.get("/api/v1/operations/", params={"limit": 500}).json()["total"]

    started = start_remote_countdown(api, steps=2, step_seconds=0.01)

    assert adapter.lost == 1
    assert client.requests_sent[("POST", "start")] == 2
    ops = agent.get("/api/v1/operations/", params={"limit": 500}).json()
    assert ops["total"] == before + 1
    mine = [
        o
        for o in ops["operations"]
        if o["metadata"].get("idempotency_key") == started["operation_id"]
    ]
    assert len(mine) == 1
    assert follow(api, started["operation_id"])[0]["status"] == "completed"


def test_same_idempotency_key_on_the_agent_returns_the_existing_operation(agent):
    key = "op_countdown_test_key_1"
    first = agent.start_work("countdown", {"steps": 1, "step_seconds": 0}, key=key)  # fmt: skip
    second = agent.start_work("countdown", {"steps": 1, "step_seconds": 0}, key=key)  # fmt: skip
    assert first.status_code == 202
    assert second.status_code == 200
    assert first.json()["operation_id"] == second.json()["operation_id"]
    assert agent.get(f"/api/v1/starts/{key}").json()["operation_id"] == first.json()["operation_id"]


class CorruptArtifacts(HTTPAdapter):
    """Damages artifact downloads in transfer: flips a byte or cuts the stream short."""

    def __init__(self, mode: str, times: int) -> None:
        super().__init__(max_retries=0)
        self.mode = mode
        self.times = times
        self.damaged = 0

    def build_response(self, req: requests.PreparedRequest, resp: Any) -> requests.Response:
        response = super().build_response(req, resp)
        if "/artifacts/" in (req.url or "") and self.damaged < self.times:
            self.damaged += 1
            response.raw = _DamagedRaw(response.raw, self.mode)
        return response


class _DamagedRaw:
    def __init__(self, raw: Any, mode: str) -> None:
        self._raw = raw
        self._mode = mode

        self._reads = 0

    def read1(self, amt: int | None = None) -> bytes:
        chunk = self._raw.read1(amt)
        self._reads += 1
        if self._reads > 1 or not chunk:
            return b"" if self._mode == "truncate" else chunk
        if self._mode == "truncate":
            return chunk[: len(chunk) // 2]
        return bytes([chunk[0] ^ 0xFF]) + chunk[1:]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def _finished_on_agent(api: Any, agent: AgentProcess, size: int) -> tuple[str, str]:
    started = start_remote_countdown(api, steps=2, step_seconds=0.01, artifact_bytes=size)
    op_id = started["operation_id"]
    remote_id = Operation.objects.get(operation_id=op_id).remote_operation_id
    wait_agent_status(agent, remote_id, {"completed"})
    return op_id, remote_id


def test_a_corrupted_artifact_is_detected_refetched_and_never_stored(backend_settings, api, agent):
    registered = register(agent)
    client = client_for(registered)
    adapter = CorruptArtifacts("flip", times=1)
    client.session.mount("http://", adapter)
    size = 200_000
    op_id, remote_id = _finished_on_agent(api, agent, size)

    get_op(api, op_id)
    fetched(op_id)
    body = get_op(api, op_id)

    assert adapter.damaged == 1
    assert client.requests_sent[("GET", "artifact")] == 2
    assert body["status"] == "completed"
    stored = Artifact.objects.get(operation_id=op_id)
    expected = hashlib.sha256(countdown_artifact_bytes(remote_id, size)).hexdigest()
    assert stored.sha256 == expected
    folder = __import__("pathlib").Path(stored.path).parent
    assert [p.name for p in folder.iterdir()] == ["countdown.bin"]  # no partial file left


def test_a_truncated_artifact_is_never_stored_and_fetched_again_on_the_next_look(
    backend_settings, api, agent
):
    registered = register(agent)
    client = client_for(registered)
    adapter = CorruptArtifacts("truncate", times=2)
    client.session.mount("http://", adapter)
    op_id, _ = _finished_on_agent(api, agent, 150_000)

    get_op(api, op_id)
    fetched(op_id)
    first = get_op(api, op_id)
    fetched(op_id)
    assert first["status"] == "running"
    assert "truncated" in first["metadata"]["artifact_error"]
    assert not Artifact.objects.filter(operation_id=op_id).exists()

    time.sleep(0.25)
    get_op(api, op_id)
    fetched(op_id)
    second = get_op(api, op_id)
    assert second["status"] == "completed"
    assert Artifact.objects.filter(operation_id=op_id).count() == 1


def test_unreachable_agent_keeps_status_marks_stale_and_tracking_resumes(
    backend_settings, api, agent_factory, client
):
    paused = agent_factory("pausable", roles="training")
    register(paused, "p1")
    started = start_remote_countdown(api, "p1", steps=20, step_seconds=0.1)
    op_id = started["operation_id"]
    before = wait_for(lambda: (b := get_op(api, op_id))["progress"]["steps_completed"] >= 2 and b)

    paused.signal(signal.SIGSTOP)
    try:
        time.sleep(0.3)
        stale = get_op(api, op_id)
        assert stale["status"] == before["status"] == "running"
        assert stale["freshness"]["stale"] is True
        assert stale["freshness"]["unreachable_since"] is not None
        assert stale["progress"]["steps_completed"] >= before["progress"]["steps_completed"]
        assert api.get("/api/v1/operations/").status_code == 200
        client.force_login(api.user)
        assert client.get(f"/operations/{op_id}/").status_code == 200
        assert client.get("/agents/").status_code == 200
    finally:
        paused.signal(signal.SIGCONT)

    final, _ = follow(api, op_id, timeout=30)
    assert final["status"] == "completed"
    assert final["freshness"]["stale"] is False
    assert [m["seq"] for m in all_metrics(api, op_id)] == list(range(20))


def test_agent_killed_mid_run_is_stale_then_failed_once_it_restarts_without_it(
    backend_settings, api, agent_factory, tmp_path
):
    doomed = agent_factory("doomed", roles="training")
    register(doomed, "d1")
    started = start_remote_countdown(api, "d1", steps=100, step_seconds=0.1)
    op_id = started["operation_id"]
    wait_for(lambda: get_op(api, op_id)["progress"]["steps_completed"] >= 1)

    doomed.kill()  # SIGKILL
    time.sleep(0.25)
    stale = get_op(api, op_id)
    assert stale["status"] == "running"
    assert stale["freshness"]["stale"] is True

    doomed.start(home=tmp_path / "fresh-home")  # restarted empty, same port
    time.sleep(0.25)
    failed = get_op(api, op_id)
    assert failed["status"] == "failed"
    assert "no longer knows operation" in failed["error_message"]
    assert failed["freshness"]["stale"] is False


def test_backend_restart_resumes_tracking_from_the_database(backend_settings, api, agent):
    from django.core.cache import cache

    from operations.instance import _set_instance_id_for_tests, current_instance_id

    register(agent)
    started = start_remote_countdown(api, steps=8, step_seconds=0.05, artifact_bytes=5000)
    op_id = started["operation_id"]
    wait_for(lambda: get_op(api, op_id)["progress"]["steps_completed"] >= 2)
    remote_id = Operation.objects.get(operation_id=op_id).remote_operation_id
    wait_agent_status(agent, remote_id, {"completed"})

    # A new backend process: no clients, no cache, another instance id. Only the DB remains.
    reset_clients()
    cache.clear()
    old_instance = current_instance_id()
    _set_instance_id_for_tests("restarted-backend")
    time.sleep(0.25)  # past the TTL of the last refresh the "old process" made

    try:
        get_op(api, op_id)
        fetched(op_id)
        final = get_op(api, op_id)
    finally:
        _set_instance_id_for_tests(old_instance)
    assert final["status"] == "completed"
    assert [m["seq"] for m in all_metrics(api, op_id)] == list(range(8))
    assert [m["step"] for m in all_metrics(api, op_id)] == list(range(1, 9))
    assert Artifact.objects.filter(operation_id=op_id).count() == 1


def test_agent_killed_and_restarted_with_its_database_reports_the_run_interrupted(
    backend_settings, api, agent_factory
):
    phoenix = agent_factory("phoenix", roles="training")
    register(phoenix, "r1")
    started = start_remote_countdown(api, "r1", steps=100, step_seconds=0.1)
    op_id = started["operation_id"]
    wait_for(lambda: get_op(api, op_id)["progress"]["steps_completed"] >= 1)

    phoenix.kill()
    phoenix.start()  # same home: it remembers the operation, but its worker is gone
    time.sleep(0.25)
    failed = get_op(api, op_id)

    assert failed["status"] == "failed"
    assert failed["error_message"].startswith("on agent r1: interrupted")


class GarbleOperations(HTTPAdapter):
    """Answers operation GETs with a wrong shape, as a broken or foreign agent might."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        response = super().send(request, **kwargs)
        if request.method == "GET" and "/operations/op_" in (request.url or ""):
            garbled = b'{"operation_id": 42, "status": "exploded"}'
            response.close()
            response.raw = io.BytesIO(garbled)
            response.headers["Content-Length"] = str(len(garbled))
        return response


def test_an_agent_answering_outside_the_contract_is_an_agent_error_never_a_500(
    backend_settings, api, agent
):
    registered = register(agent)
    started = start_remote_countdown(api, steps=50, step_seconds=0.1)
    op_id = started["operation_id"]
    wait_for(lambda: get_op(api, op_id)["status"] == "running")
    client = client_for(registered)
    client.session.mount("http://", GarbleOperations())
    time.sleep(0.25)

    body = get_op(api, op_id)

    assert body["status"] == "running"
    assert body["freshness"]["stale"] is True
    assert "does not match the API contract" in body["metadata"]["last_refresh_error"]
    assert api.get(f"/api/v1/operations/{op_id}/metrics/").status_code == 200
    client.session.mount("http://", HTTPAdapter())
    api.post(f"/api/v1/operations/{op_id}/cancel/", {"reason": "done"}, format="json")
    assert follow(api, op_id)[0]["status"] == "cancelled"
