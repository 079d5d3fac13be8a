"""AgentClient: error translation, retry policy, response validation, pooling, downloads.

Transport-level rules use a fake adapter (no network); the rest a real agent process.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter

from hostagents.client import (
    AgentAuthError,
    AgentClient,
    AgentNotFound,
    AgentProtocolError,
    AgentRejected,
    AgentUnreachable,
    ArtifactIntegrityError,
    client_for,
    reset_clients,
)
from hostagents.errors import describe_agent_error
from tests.hostagents.conftest import TOKEN, AgentProcess, free_port


class CannedAdapter(BaseAdapter):
    """Answers from a list of (status, body | exception); records every request."""

    def __init__(self, answers: list[Any]) -> None:
        super().__init__()
        self.answers = list(answers)
        self.requests: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        status, body = answer
        response = requests.Response()
        response.status_code = status
        response._content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response.headers["Content-Type"] = "application/json"
        response.request = request
        response.url = request.url or ""
        return response

    def close(self) -> None:
        pass


def fake_client(answers: list[Any], retries: int = 2) -> tuple[AgentClient, CannedAdapter]:
    session = requests.Session()
    adapter = CannedAdapter(answers)
    session.mount("http://", adapter)
    sleeps: list[float] = []
    client = AgentClient(
        "fake", "http://agent.test:1", TOKEN, session=session, retries=retries,
        backoff=0.01, sleep=sleeps.append,
    )  # fmt: skip
    client.sleeps = sleeps  # type: ignore[attr-defined]
    return client, adapter


def error(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message, "details": {}}}


def test_a_404_becomes_agent_not_found():
    client, _ = fake_client([(404, error("not_found", "Operation 'x' does not exist"))])
    with pytest.raises(AgentNotFound, match="does not exist"):
        client.get_operation("x")


def test_connection_refused_becomes_unreachable_after_retries():
    client = AgentClient("gone", f"http://127.0.0.1:{free_port()}", TOKEN, retries=2, backoff=0)
    with pytest.raises(AgentUnreachable, match="agent gone: unreachable"):
        client.get_operation("x")
    assert client.requests_sent[("GET", "operation")] == 3


def test_after_nothing_answered_the_agent_is_not_contacted_for_the_base_backoff(agent):
    now = [100.0]
    client = AgentClient(
        "gone", f"http://127.0.0.1:{free_port()}", TOKEN, retries=2, backoff=0,
        clock=lambda: now[0], quiet_base=1.0, quiet_max=30.0,
    )  # fmt: skip
    with pytest.raises(AgentUnreachable, match="Connection refused"):
        client.get_operation("x")
    assert client.requests_sent.total() == 3

    # Within the next second every call fails at once, saying why, without a request.
    for _ in range(5):
        with pytest.raises(AgentUnreachable) as quiet:
            client.refresh("x", cursor=0)
        assert "not contacted (refresh): nothing answered at its last try (connection refused)" in (
            quiet.value.message
        )
        assert quiet.value.delivered is False
    assert client.requests_sent.total() == 3
    assert describe_agent_error(quiet.value.message).startswith("Nothing answers at its address")

    # Not doubled: a second refused call keeps the wait at one second.
    now[0] += 1.01
    with pytest.raises(AgentUnreachable, match="Connection refused"):
        client.health()
    assert client.quiet_until - now[0] == pytest.approx(1.0)

    # The agent is back at that address: the next call after the wait reaches it.
    now[0] += 1.01
    client.base_url = agent.url + "/"
    assert client.health()["status"] == "ok"
    assert client.quiet_until == 0.0


def test_reads_are_retried_with_growing_backoff_and_then_succeed(agent: AgentProcess):
    op = {"metrics": [], "new_cursor": 0}
    client, adapter = fake_client([requests.ConnectionError("reset"), (502, b"bad gw"), (200, op)])
    assert client.get_metrics("x", cursor=0) == ([], 0)
    assert len(adapter.requests) == 3
    assert client.sleeps == [0.01, 0.02]  # type: ignore[attr-defined]


def test_cancel_is_not_retried():
    client, adapter = fake_client([requests.ConnectionError("reset")])
    with pytest.raises(AgentUnreachable):
        client.cancel("x", "stop")
    assert len(adapter.requests) == 1


def test_a_timeout_is_unreachable_with_a_clear_message():
    client, _ = fake_client([requests.ReadTimeout("read timed out")], retries=0)
    with pytest.raises(AgentUnreachable, match="timed out"):
        client.get_operation("x")


def test_an_answer_that_is_not_json_is_a_protocol_error():
    client, _ = fake_client([(200, b"<html>proxy login</html>")])
    with pytest.raises(AgentProtocolError, match="not JSON"):
        client.get_operation("x")


def test_an_operation_missing_fields_is_a_protocol_error_naming_them():
    client, _ = fake_client([(200, {"operation_id": "x", "status": "exploded"})])
    with pytest.raises(AgentProtocolError) as caught:
        client.get_operation("x")
    assert "status" in str(caught.value)
    assert "progress" in str(caught.value)


def test_a_metrics_page_that_breaks_the_cursor_is_rejected():
    page = {
        "metrics": [{"seq": 1, "kind": "step", "recorded_at": "2026-01-01T00:00:00Z"}],
        "new_cursor": 1,
    }
    client, _ = fake_client([(200, page)])
    with pytest.raises(AgentProtocolError, match="new_cursor"):
        client.get_metrics("x", cursor=0)
    behind, _ = fake_client([(200, {**page, "new_cursor": 2})])
    with pytest.raises(AgentProtocolError, match="cursor 5"):
        behind.get_metrics("x", cursor=5)


def test_401_is_an_auth_error_and_400_is_rejected_with_details():
    client, _ = fake_client([(401, error("authentication_failed", "Invalid agent token"))])
    with pytest.raises(AgentAuthError, match="KTRDR_AGENT_TOKEN"):
        client.health()
    bad = {"error": {"code": "invalid", "message": "steps: bad", "details": {"steps": ["bad"]}}}
    client, _ = fake_client([(400, bad)])
    with pytest.raises(AgentRejected) as caught:
        client.start({"operation_type": "countdown", "params": {"steps": 0}}, idempotency_key="k")
    assert caught.value.details == {"steps": ["bad"]}
    assert caught.value.status == 400


def test_wrong_token_against_a_real_agent_is_an_auth_error(agent):
    client = AgentClient("real", agent.url, "wrong-token")
    with pytest.raises(AgentAuthError):
        client.health()


def test_client_for_keeps_one_pooled_session_per_agent(settings):
    settings.KTRDR = {**settings.KTRDR, "AGENT_TOKEN": TOKEN}
    reset_clients()
    a = SimpleNamespace(name="a", base_url="http://127.0.0.1:9")
    b = SimpleNamespace(name="b", base_url="http://127.0.0.1:10")
    first, again, other = client_for(a), client_for(a), client_for(b)
    assert first is again
    assert first.session is again.session
    assert other is not first
    moved = client_for(SimpleNamespace(name="a", base_url="http://127.0.0.1:11"))
    assert moved is not first  # a changed URL gets a fresh client
    reset_clients()


def test_a_streamed_artifact_with_a_wrong_checksum_leaves_no_file(agent, tmp_path: Path):
    op = agent.start_work(
        "countdown", {"steps": 1, "step_seconds": 0, "artifact_bytes": 5000}
    ).json()
    from tests.hostagents.conftest import wait_for

    done = wait_for(
        lambda: (o := agent.operation(op["operation_id"]))["status"] == "completed" and o
    )
    item = done["result_summary"]["artifacts"][0]
    client = AgentClient("real", agent.url, TOKEN)
    dest = tmp_path / "countdown.bin"

    with pytest.raises(ArtifactIntegrityError, match="X-Content-SHA256"):
        client.download_artifact(
            op["operation_id"], "countdown.bin", dest,
            expected_sha256="0" * 64, expected_size=item["size"], max_bytes=10**6,
        )  # fmt: skip
    with pytest.raises(ArtifactIntegrityError, match="limit"):
        client.download_artifact(
            op["operation_id"], "countdown.bin", dest,
            expected_sha256=item["sha256"], expected_size=item["size"], max_bytes=100,
        )  # fmt: skip
    assert list(tmp_path.iterdir()) == []

    got = client.download_artifact(
        op["operation_id"], "countdown.bin", dest,
        expected_sha256=item["sha256"], expected_size=item["size"], max_bytes=10**6,
    )  # fmt: skip
    assert got.sha256 == item["sha256"]
    assert [p.name for p in tmp_path.iterdir()] == ["countdown.bin"]
