"""An agent's log lines reach the backend like its progress: pulled by the refresh a reader
causes, by their own cursor, stored by the backend (docs/logs-and-retention.md). Real `run_agent`
subprocesses on loopback; a small fake server plays the agent that answers garbage."""

from __future__ import annotations

import contextlib
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core.management import call_command

from hostagents import services as agent_services
from hostagents.models import Agent
from operations import services
from operations.models import Executor, OperationLog
from operations.oplog import MAX_LINE_CHARS
from operations.serializers import serialize_operation
from tests.hostagents.conftest import AgentProcess
from tests.hostagents.test_remote import follow, start_remote_countdown

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _logs(api: Any, operation_id: str, **query: Any) -> dict[str, Any]:
    response = api.get(f"/api/v1/operations/{operation_id}/logs/", query)
    assert response.status_code == 200, response.content
    return response.json()


def test_an_agent_runs_lines_appear_on_the_backend_with_their_source(
    agent: AgentProcess, backend_settings: Any, api: Any
) -> None:
    agent_services.agent_add(name="a1", base_url=agent.url)
    started = start_remote_countdown(api, steps=4, step_seconds=0.05)
    op_id = started["operation_id"]
    end, _ = follow(api, op_id)
    assert end["status"] == "completed"

    lines = _logs(api, op_id, limit=1000)["logs"]
    by_source: dict[str, list[str]] = {}
    for line in lines:
        by_source.setdefault(line["source"], []).append(line["message"])
    # The agent's own lines: its services and the worker's logging, stored there, pulled here.
    assert "counting down 4 steps of 0.05 s" in by_source["a1"]
    assert any(m.startswith("completed: in ") for m in by_source["a1"])
    # The backend's own lines about the same operation.
    remote_id = end["location"]["remote_operation_id"]
    assert f"attached: agent a1 runs it as {remote_id}" in by_source[""]
    assert any(m.startswith("completed: in ") for m in by_source[""])
    # One cursor over both, no line twice (the agent's cursor is persisted on the row).
    assert [line["seq"] for line in lines] == list(range(len(lines)))
    assert len(by_source["a1"]) == len(set(by_source["a1"]))
    # The agent keeps its own log, which says the same.
    on_agent = agent.get(f"/api/v1/operations/{remote_id}/logs/").json()["logs"]
    assert [line["message"] for line in on_agent] == by_source["a1"]

    out = io.StringIO()
    call_command("ops", "logs", op_id, stdout=out)
    assert "[a1] counting down 4 steps of 0.05 s" in out.getvalue()
    assert "[here] attached: agent a1" in out.getvalue()


def test_ops_logs_follow_pulls_an_agent_runs_lines_until_it_ends(
    agent: AgentProcess, backend_settings: Any, api: Any
) -> None:
    agent_services.agent_add(name="a1", base_url=agent.url)
    op_id = start_remote_countdown(api, steps=6, step_seconds=0.05)["operation_id"]
    out = io.StringIO()
    # Nobody else reads it: the command's own reads pull the agent until the end.
    call_command("ops", "logs", op_id, "--follow", "--interval", "0.05", stdout=out)
    text = out.getvalue()
    assert "[a1] counting down 6 steps of 0.05 s" in text
    assert "[a1] completed: in " in text
    assert text.rstrip().endswith(f"{op_id} completed")


# --- an agent that answers garbage ---------------------------------------------------------


class LyingAgent:
    """Answers every refresh with a valid operation and the log part it is told to send."""

    def __init__(self) -> None:
        self.body = b"{}"
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with contextlib.suppress(OSError):
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(fake.body)))
                    self.end_headers()
                    self.wfile.write(fake.body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def lying_agent() -> Iterator[LyingAgent]:
    fake = LyingAgent()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def _line(seq: int, message: str = "hello") -> dict[str, Any]:
    return {
        "seq": seq,
        "logged_at": "2026-01-01T00:00:00+00:00",
        "level": "INFO",
        "source": "",
        "event": "",
        "message": message,
    }


@pytest.mark.parametrize(
    ("logs", "cursor"),
    [
        pytest.param([_line(i) for i in range(5000)], 5000, id="too-many-lines"),
        pytest.param([_line(0, "x" * (MAX_LINE_CHARS + 1))], 1, id="too-long-a-line"),
        pytest.param([_line(0, "x" * (10 * 1024 * 1024))], 1, id="ten-megabytes"),
        pytest.param("not a list", 1, id="not-a-list"),
        pytest.param([_line(3), _line(1)], 4, id="out-of-order"),
        pytest.param([{"seq": 0, "message": 5}], 1, id="missing-fields"),
    ],
)
def test_an_agent_answering_garbage_lines_is_said_stale_and_stores_nothing(
    lying_agent: LyingAgent, backend_settings: Any, api: Any, logs: Any, cursor: int
) -> None:
    backend_settings.KTRDR = {**backend_settings.KTRDR, "AGENT_MAX_ANSWER_BYTES": 1024 * 1024}
    Agent.objects.create(name="liar", base_url=lying_agent.url)
    op = services.operation_create(operation_type="countdown", executor=Executor.AGENT)
    services.operation_attach_remote(
        operation_id=op.operation_id, agent="liar", remote_operation_id="op_remote_1"
    )
    op.refresh_from_db()
    remote = serialize_operation(op) | {"status": "running"}
    lying_agent.body = json.dumps(
        {
            "operation": remote,
            "metrics": [],
            "new_cursor": 0,
            "logs": logs,
            "logs_new_cursor": cursor,
        }
    ).encode()
    before = OperationLog.objects.filter(operation=op).count()

    answer = api.get(f"/api/v1/operations/{op.operation_id}/logs/")
    assert answer.status_code == 200
    detail = api.get(f"/api/v1/operations/{op.operation_id}/").json()
    assert detail["freshness"]["stale"] is True
    assert detail["metadata"]["last_refresh_error"].startswith("agent liar: ")
    stored = OperationLog.objects.filter(operation=op)
    # Nothing the agent sent; only the backend's own line saying it cannot pull it.
    assert not stored.filter(source="liar").exists()
    assert [line.event for line in stored[before:]] == ["unreachable"]
    assert detail["status"] == "pending"
