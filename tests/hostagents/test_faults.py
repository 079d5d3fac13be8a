"""Truthful state under faults (docs/architecture.md §6): lost start answers are adopted, every
agent call has one deadline and a size cap, a hung agent is backed off, inputs travel as streamed
blobs, a fresh agent answers health before torch is imported, and the read that discovers a
remote completion does not pay for fetching its results.

Misbehaving agents are a small threaded HTTP server on a loopback port; the rest are real
`run_agent` subprocesses. No test asserts on wall time: clocks are injected where time matters.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter

from hostagents import services as agent_services
from hostagents.client import (
    AgentClient,
    AgentProtocolError,
    AgentRejected,
    AgentUnreachable,
    client_for,
)
from hostagents.models import Agent
from hostagents.place import FETCH_PHASE, UNCONFIRMED_START_SECONDS, AgentPlace, fetches_in_flight
from operations import services
from operations.exceptions import ServiceUnavailable
from operations.instance import current_instance_id
from operations.kinds import RemoteInput, RemotePayload, kind_get
from operations.models import Executor, Operation
from operations.places import remote_places
from tests.hostagents.conftest import TOKEN, AgentProcess, free_port, wait_for
from tests.hostagents.test_remote import fetched, follow, get_op, start_remote_countdown

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


# --- a misbehaving agent ----------------------------------------------------------------------
class FakeAgent:
    """A loopback HTTP server that answers like a broken agent: `silent` (never answers),
    `drip` (one byte at a time), `huge` (announces 200 MB), `endless` (no length, no end),
    `html400`/`html500` (a debug page), or `ok` (a valid health)."""

    HEALTH = (
        b'{"status": "ok", "role": "agent", "name": "fake", "version": "0", "roles": [],'
        b' "capabilities": [], "gpu": {"available": false, "device_name": null,'
        b' "device_count": 0}, "running_operations": [], "running_count": 0}'
    )

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests: list[str] = []
        self.bytes_sent = 0
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake.requests.append(self.path)
                with contextlib.suppress(OSError):  # the client hung up, as it should
                    fake.answer(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _send(self, handler: BaseHTTPRequestHandler, data: bytes) -> None:
        handler.wfile.write(data)
        handler.wfile.flush()
        self.bytes_sent += len(data)

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        mode = self.mode
        if mode == "silent":
            self.release.wait(30)
            return
        if mode == "ok":
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(self.HEALTH)))
            handler.end_headers()
            self._send(handler, self.HEALTH)
            return
        if mode in {"html400", "html500"}:
            page = b"<html><h1>Traceback</h1><pre>SECRET_KEY = 'django-insecure'</pre></html>"
            handler.send_response(400 if mode == "html400" else 500)
            handler.send_header("Content-Type", "text/html")
            handler.send_header("Content-Length", str(len(page)))
            handler.end_headers()
            self._send(handler, page)
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        if mode == "drip":
            handler.send_header("Content-Length", "100000")
            handler.end_headers()
            for _ in range(100000):
                if self.release.is_set():
                    return
                self._send(handler, b" ")
                time.sleep(0.01)
            return
        if mode == "huge":
            handler.send_header("Content-Length", str(200 * 1024**2))
        else:  # endless: no length, the body ends when the connection does
            handler.send_header("Connection", "close")
        handler.end_headers()
        block = b" " * (1 << 16)
        while self.bytes_sent < 200 * 1024**2 and not self.release.is_set():
            self._send(handler, block)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_agent() -> Iterator[Any]:
    made: list[FakeAgent] = []

    def make(mode: str) -> FakeAgent:
        fake = FakeAgent(mode)
        made.append(fake)
        return fake

    yield make
    for fake in made:
        fake.close()


class FakeClock:
    """A clock the test moves; `step` advances it on every reading (a transfer that "takes
    time" without the test waiting for it)."""

    def __init__(self, step: float = 0.0) -> None:
        self.now = 1000.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def fake_client(url: str, clock: FakeClock, **kwargs: Any) -> AgentClient:
    options = {"read_timeout": 0.5, "connect_timeout": 0.5, "retries": 2, "quiet_base": 1.0}
    options.update(kwargs)
    return AgentClient("fake", url, TOKEN, clock=clock, **options)


# --- 2. deadlines, size caps, backoff ---------------------------------------------------------
def test_a_silent_agent_costs_one_deadline_then_is_not_contacted_while_backing_off(fake_agent):
    fake = fake_agent("silent")
    clock = FakeClock()
    client = fake_client(fake.url, clock)

    with pytest.raises(AgentUnreachable, match="timed out"):
        client.get_operation("op_x")
    assert len(fake.requests) == 1  # a timeout is not retried

    with pytest.raises(AgentUnreachable, match="not contacted") as caught:
        client.get_operation("op_x")
    assert caught.value.delivered is False
    assert len(fake.requests) == 1

    clock.now += 1.01  # past the first backoff (1 s): asked again, times out again
    with pytest.raises(AgentUnreachable, match="timed out"):
        client.get_operation("op_x")
    assert len(fake.requests) == 2
    assert client.quiet_until - clock.now == pytest.approx(2.0, abs=0.01)  # doubled

    clock.now += 2.01
    fake.mode = "ok"
    fake.release.set()
    assert client.health()["status"] == "ok"
    assert client.quiet_until == 0.0  # an answer ends the backoff


def test_the_backoff_doubles_up_to_its_cap(fake_agent):
    fake = fake_agent("silent")
    clock = FakeClock()
    client = fake_client(fake.url, clock, quiet_base=1.0, quiet_max=3.0)
    for _ in range(4):
        with pytest.raises(AgentUnreachable, match="timed out"):
            client.health()
        waited = client.quiet_until - clock.now
        clock.now = client.quiet_until + 0.01
    assert waited == pytest.approx(3.0, abs=0.01)


def test_a_slow_drip_answer_is_cut_at_the_overall_deadline(fake_agent):
    fake = fake_agent("drip")
    clock = FakeClock(step=0.05)  # every look at the clock "takes" 50 ms
    client = fake_client(fake.url, clock, read_timeout=2.0)

    with pytest.raises(AgentUnreachable, match="timed out"):
        client.get_operation("op_x")
    fake.release.set()
    assert fake.bytes_sent < 100000  # cut off, not read to the end


def test_an_answer_announcing_more_than_the_cap_is_refused_unread(fake_agent):
    fake = fake_agent("huge")
    client = fake_client(fake.url, FakeClock(), read_timeout=5.0, max_answer_bytes=1 << 20)
    with pytest.raises(AgentProtocolError, match="over the 1048576-byte limit"):
        client.get_operation("op_x")
    fake.release.set()
    assert fake.bytes_sent < 50 * 1024**2


def test_an_endless_answer_is_cut_at_the_cap(fake_agent):
    fake = fake_agent("endless")
    client = fake_client(fake.url, FakeClock(), read_timeout=5.0, max_answer_bytes=1 << 20)
    with pytest.raises(AgentProtocolError, match="over the 1048576-byte limit"):
        client.get_operation("op_x")
    fake.release.set()
    assert fake.bytes_sent < 50 * 1024**2


@pytest.mark.parametrize("mode", ["html400", "html500"])
def test_an_error_page_is_never_quoted_only_its_status(fake_agent, mode):
    fake = fake_agent(mode)
    client = fake_client(fake.url, FakeClock(), retries=0)
    expected = AgentRejected if mode == "html400" else AgentUnreachable
    with pytest.raises(expected) as caught:
        client.get_results("op_x")
    assert "SECRET" not in str(caught.value)
    assert "Traceback" not in str(caught.value)
    assert ("HTTP 400" if mode == "html400" else "HTTP 500") in str(caught.value)


def _remote_row(agent_name: str, remote_id: str = "op_countdown_remote_1") -> Operation:
    op = services.operation_create(
        operation_type="countdown",
        metadata={"steps": 5},
        executor=Executor.AGENT,
        agent=agent_name,
    )
    services.operation_attach_remote(
        operation_id=op.operation_id, agent=agent_name, remote_operation_id=remote_id
    )
    return services.operation_start(operation_id=op.operation_id)


def test_readers_of_an_operation_on_a_hung_agent_get_the_snapshot_without_asking_it_again(
    backend_settings, api, fake_agent
):
    fake = fake_agent("silent")
    agent_services.agent_add(name="hung", base_url=fake.url)
    op = _remote_row("hung")

    bodies = [get_op(api, op.operation_id, force_refresh="true") for _ in range(4)]

    assert len(fake.requests) == 1  # one deadline paid; then backed off
    assert all(b["status"] == "running" for b in bodies)
    assert all(b["freshness"]["stale"] for b in bodies)
    assert bodies[-1]["freshness"]["unreachable_since"] is not None


def test_a_stopped_agent_is_asked_once_and_readers_get_the_last_snapshot(
    backend_settings, api, agent_factory
):
    stopped = agent_factory("stopped", roles="training")
    agent_services.agent_add(name="s1", base_url=stopped.url)
    started = start_remote_countdown(api, "s1", steps=100, step_seconds=0.1)
    op_id = started["operation_id"]
    wait_for(lambda: get_op(api, op_id)["progress"]["steps_completed"] >= 1)
    client = client_for(Agent.objects.get(name="s1"))
    stopped.signal(signal.SIGSTOP)
    try:
        before = client.requests_sent[("GET", "refresh")]
        bodies = [get_op(api, op_id, force_refresh="true") for _ in range(3)]
        assert client.requests_sent[("GET", "refresh")] - before == 1
        assert all(b["status"] == "running" and b["freshness"]["stale"] for b in bodies)
    finally:
        stopped.signal(signal.SIGCONT)
    api.post(f"/api/v1/operations/{op_id}/cancel/", {"reason": "done"}, format="json")
    assert follow(api, op_id, timeout=60)[0]["status"] == "cancelled"


# --- 1. a start whose answer is lost is adopted ------------------------------------------------
class TimeOutFirstStart(HTTPAdapter):
    """Delivers the first start to the agent, then times out waiting for its answer."""

    def __init__(self) -> None:
        super().__init__(max_retries=0)
        self.lost = 0

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        response = super().send(request, **kwargs)
        if request.method == "POST" and "/starts/" in (request.url or "") and not self.lost:
            self.lost += 1
            response.close()
            raise requests.ReadTimeout("read timed out (the answer never came)")
        return response


def test_a_start_whose_answer_times_out_is_adopted_never_failed_and_runs_once(
    backend_settings, api, agent
):
    registered, _ = agent_services.agent_add(name="a1", base_url=agent.url)
    client = client_for(registered)
    adapter = TimeOutFirstStart()
    client.session.mount("http://", adapter)

    started = start_remote_countdown(api, steps=3, step_seconds=0.05)

    assert adapter.lost == 1
    assert client.requests_sent[("POST", "start")] == 1  # a timeout is not retried
    assert started["status"] == "pending"
    assert started["location"]["remote_operation_id"] in ("", None)
    assert "looked up on the agent by its key" in started["metadata"]["last_refresh_error"]
    final, seen = follow(api, started["operation_id"], timeout=60)
    assert final["status"] == "completed"
    assert all(b["status"] != "failed" for b in seen)
    assert client.requests_sent[("GET", "find_start")] >= 1
    on_agent = agent.get("/api/v1/operations/", params={"limit": 500}).json()["operations"]
    mine = [o for o in on_agent if o["metadata"].get("idempotency_key") == started["operation_id"]]
    assert len(mine) == 1
    assert final["location"]["remote_operation_id"] == mine[0]["operation_id"]


def test_a_start_that_never_reached_the_agent_fails_at_once(backend_settings):
    registered, _ = agent_services.agent_add(
        name="gone", base_url=f"http://127.0.0.1:{free_port()}"
    )
    with pytest.raises(ServiceUnavailable, match="could not start"):
        remote_places()[Executor.AGENT].start(
            kind=kind_get("countdown"), target=registered, metadata={"steps": 1}
        )
    row = Operation.objects.get(agent="gone")
    assert row.status == "failed"


def test_an_adopted_start_the_agent_never_got_fails_only_after_the_grace_period(
    backend_settings, agent
):
    registered, _ = agent_services.agent_add(name="a1", base_url=agent.url)
    op = services.operation_create(
        operation_type="countdown", metadata={"steps": 1}, executor=Executor.AGENT, agent="a1"
    )
    op = services.operation_mark_unreachable(operation_id=op.operation_id, error="answer lost")
    lost_at = op.unreachable_since.timestamp()
    place = AgentPlace(clock=lambda: lost_at + UNCONFIRMED_START_SECONDS - 1)
    assert place.refresh(op).status == "pending"
    place.clock = lambda: lost_at + UNCONFIRMED_START_SECONDS + 1
    failed = place.refresh(Operation.objects.get(pk=op.pk))
    assert failed.status == "failed"
    assert "never received the start" in failed.error_message
    assert client_for(registered).requests_sent[("GET", "find_start")] == 2


# --- 4. inputs travel as streamed blobs ------------------------------------------------------
class RecordBodies(HTTPAdapter):
    def __init__(self) -> None:
        super().__init__(max_retries=0)
        self.bodies: list[tuple[str, str, int]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        size = int(request.headers.get("Content-Length") or 0)
        path = (request.url or "").split("/api/v1/", 1)[-1]
        self.bodies.append((request.method or "", path, size))
        return super().send(request, **kwargs)


def test_a_big_input_travels_as_a_streamed_blob_and_the_start_body_stays_small(
    backend_settings, api, agent
):
    registered, _ = agent_services.agent_add(name="a1", base_url=agent.url)
    client = client_for(registered)
    recorder = RecordBodies()
    client.session.mount("http://", recorder)
    data = os.urandom(40 * 1024**2)  # far over any JSON body limit
    big = RemoteInput(key="EURUSD:1m", data=data, rows=1)
    kind = replace(
        kind_get("countdown"),
        remote_payload=lambda metadata: RemotePayload(params=metadata, inputs=[big]),
    )
    place = remote_places()[Executor.AGENT]

    op = place.start(kind=kind, target=registered, metadata={"steps": 1, "step_seconds": 0})

    puts = [b for b in recorder.bodies if b[0] == "PUT"]
    starts = [b for b in recorder.bodies if b[1] == "starts/"]
    assert puts == [("PUT", f"blobs/{big.sha256}", len(data))]
    assert len(starts) == 1
    assert starts[0][2] < 10_000
    assert op.metadata["inputs_sent_bytes"] == len(data)
    assert client.blobs_missing([big.sha256]) == []
    assert follow(api, op.operation_id, timeout=60)[0]["status"] == "completed"

    again = place.start(kind=kind, target=registered, metadata={"steps": 1, "step_seconds": 0})
    assert [b for b in recorder.bodies if b[0] == "PUT"] == puts  # cached: not sent again
    assert again.metadata["inputs_cached_on_agent"] == 1


def test_a_blob_that_does_not_match_its_hash_is_refused_and_not_stored(agent):
    data = b"some bars"
    wrong = hashlib.sha256(b"other bars").hexdigest()
    response = agent.session.put(f"{agent.url}/api/v1/blobs/{wrong}", data=data, timeout=10)
    assert response.status_code == 400
    assert "hashes to" in response.json()["error"]["message"]
    missing = agent.post("/api/v1/blobs/missing", json={"sha256": [wrong]}).json()
    assert missing["missing"] == [wrong]


# --- 3. a fresh agent answers health before torch is imported ---------------------------------
def test_a_fresh_agent_answers_health_while_torch_is_still_importing(tmp_path):
    stuck = tmp_path / "stuck-torch"
    stuck.mkdir()
    # A torch whose import never finishes: health must not wait on it.
    (stuck / "torch.py").write_text("import time\ntime.sleep(3600)\n")
    path = os.pathsep.join(p for p in (str(stuck), os.environ.get("PYTHONPATH", "")) if p)
    fresh = AgentProcess(
        "fresh", tmp_path / "fresh-home", roles="training", env={"PYTHONPATH": path}
    )
    try:
        listening, answered = first_health_after_listening(fresh)
        health = fresh.get("/api/v1/health").json()
    finally:
        fresh.kill()

    assert health["gpu"]["probing"] is True
    assert "gpu" not in health["capabilities"]
    assert "training" in health["capabilities"]
    # A readiness fact, recorded rather than asserted against a budget: seconds from the port
    # accepting connections to the first health answer (a fresh home: migrated, torch stuck).
    print(f"fresh agent: first health {answered - listening:.3f} s after listening")


def first_health_after_listening(agent: AgentProcess) -> tuple[float, float]:
    """Start `agent`, noting when its port first accepts and when health first answers."""
    starting = threading.Thread(target=agent.start, kwargs={"timeout": 120}, daemon=True)
    starting.start()
    listening = answered = 0.0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not answered:
        if not listening:
            with socket.socket() as sock:
                sock.settimeout(0.5)
                if sock.connect_ex(("127.0.0.1", agent.port)) == 0:
                    listening = time.monotonic()
        if listening:
            try:
                health = requests.get(
                    f"{agent.url}/api/v1/health",
                    headers={"Authorization": f"Bearer {TOKEN}"},
                    timeout=30,
                )
                if health.ok:
                    answered = time.monotonic()
            except requests.RequestException:
                pass
        time.sleep(0.02)
    starting.join(130)
    assert listening, "the agent never listened"
    assert answered, "the agent never answered health"
    return listening, answered


def test_the_gpu_probe_finishes_and_health_then_says_so(agent):
    def probed() -> dict | None:
        gpu = agent.get("/api/v1/health").json()["gpu"]
        return gpu if gpu["probing"] is False else None

    gpu = wait_for(probed, timeout=180, interval=0.5)
    assert isinstance(gpu["available"], bool)


# --- 5. the read that discovers a completion does not pay for the fetch ------------------------
class HoldArtifacts(HTTPAdapter):
    """Holds artifact downloads until released, or breaks the first with a crash."""

    def __init__(self, crash_first: bool = False) -> None:
        super().__init__(max_retries=0)
        self.release = threading.Event()
        self.crash_first = crash_first
        self.artifact_gets = 0

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if "/artifacts/" in (request.url or ""):
            self.artifact_gets += 1
            if self.crash_first and self.artifact_gets == 1:
                raise RuntimeError("the fetching process hit a bug")
            if not self.crash_first:
                self.release.wait(60)
        return super().send(request, **kwargs)


def _completed_on_agent(api: Any, agent: AgentProcess) -> str:
    started = start_remote_countdown(api, steps=2, step_seconds=0.01, artifact_bytes=50_000)
    op_id = started["operation_id"]
    remote_id = Operation.objects.get(operation_id=op_id).remote_operation_id
    wait_for(lambda: agent.operation(remote_id)["status"] == "completed")
    time.sleep(0.25)  # past the backend TTL of the start's answer
    return op_id


def test_the_read_that_discovers_a_completion_leaves_the_fetch_to_one_background_thread(
    backend_settings, api, agent
):
    # The hold below must not outlast the transfer's deadline (that is another test's matter).
    backend_settings.KTRDR = {**backend_settings.KTRDR, "AGENT_READ_TIMEOUT": 60.0}
    registered, _ = agent_services.agent_add(name="a1", base_url=agent.url)
    adapter = HoldArtifacts()
    client_for(registered).session.mount("http://", adapter)
    op_id = _completed_on_agent(api, agent)
    try:
        first = get_op(api, op_id)
        assert first["status"] == "running"  # not completed before it really is
        assert first["progress"]["phase"] == FETCH_PHASE
        time.sleep(0.25)
        second = get_op(api, op_id, force_refresh="true")
        assert second["status"] == "running"
        assert fetches_in_flight() == [op_id]
        assert adapter.artifact_gets == 1  # single flight: the second look started nothing
    finally:
        adapter.release.set()
    fetched(op_id)
    final = get_op(api, op_id)
    assert final["status"] == "completed"
    assert final["result_summary"]["artifacts"][0]["name"] == "countdown.bin"


def test_a_fetch_that_crashes_leaves_the_operation_running_and_a_later_look_retries(
    backend_settings, api, agent
):
    registered, _ = agent_services.agent_add(name="a1", base_url=agent.url)
    adapter = HoldArtifacts(crash_first=True)
    client_for(registered).session.mount("http://", adapter)
    op_id = _completed_on_agent(api, agent)

    get_op(api, op_id)
    fetched(op_id)
    after_crash = get_op(api, op_id, force_refresh="true")
    assert after_crash["status"] in {"running", "completed"}
    fetched(op_id)
    final = get_op(api, op_id, force_refresh="true")
    assert final["status"] == "completed"
    assert adapter.artifact_gets == 2
    claim = Operation.objects.get(operation_id=op_id).metadata["result_fetch"]
    assert claim["by"] == current_instance_id()


# --- a stopped agent --------------------------------------------------------------------------
def test_a_page_listing_many_operations_of_a_stopped_agent_contacts_it_once_not_per_row(
    backend_settings, client, django_user_model
):
    user = django_user_model.objects.create_user("viewer", password="pw-viewer-123")
    client.force_login(user)
    stopped, _ = agent_services.agent_add(
        name="stopped", base_url=f"http://127.0.0.1:{free_port()}"
    )
    ids = [f"op_countdown_20261203_000000_{i:08x}" for i in range(8)]
    for i, operation_id in enumerate(ids):
        Operation.objects.create(
            operation_id=operation_id, operation_type="countdown", status="running",
            executor=Executor.AGENT, agent="stopped", remote_operation_id=f"remote-{i}",
        )  # fmt: skip
    table = {"HX-Request": "true", "HX-Target": "operations-table"}

    page = client.get("/operations/", headers=table)

    assert page.status_code == 200
    assert all(f'id="row-{operation_id}"' in page.content.decode() for operation_id in ids)
    # One refresh went out (its two attempts: retries=1); the seven others were answered from
    # the rows at once instead of paying the retries' backoff seven times more.
    assert client_for(stopped).requests_sent.total() == 2
    assert Operation.objects.filter(unreachable_since__isnull=False).count() == len(ids)
    assert {op.status for op in Operation.objects.all()} == {"running"}
