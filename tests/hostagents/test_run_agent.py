"""`manage.py run_agent`: refuses to run open, validates its arguments, shuts down cleanly."""

from __future__ import annotations

import signal
import sqlite3

import pytest
from django.core.management import CommandError, call_command

from tests.hostagents.conftest import wait_for


def test_an_agent_refuses_to_start_without_a_token(monkeypatch):
    monkeypatch.delenv("KTRDR_AGENT_TOKEN", raising=False)
    with pytest.raises(CommandError, match="KTRDR_AGENT_TOKEN is not set"):
        call_command("run_agent", "--port", "8999")


def test_unknown_roles_are_rejected(monkeypatch):
    monkeypatch.setenv("KTRDR_AGENT_TOKEN", "x")
    with pytest.raises(CommandError, match="unknown roles"):
        call_command("run_agent", "--roles", "training,gpu-farm")


@pytest.mark.slow
def test_sigterm_cancels_running_work_and_records_it_before_exit(agent_factory):
    agent = agent_factory("stoppable", roles="training")
    op = agent.start_work("countdown", {"steps": 500, "step_seconds": 0.05}).json()
    wait_for(lambda: agent.operation(op["operation_id"])["progress"]["steps_completed"] >= 1)

    agent.signal(signal.SIGTERM)
    agent.proc.wait(timeout=120)  # a hang guard only: the work is cancelled, not waited for

    with sqlite3.connect(agent.home / "ktrdr.sqlite3") as db:
        status, reason = db.execute(
            "select status, cancel_reason from operations_operation where operation_id = ?",
            (op["operation_id"],),
        ).fetchone()
    assert status == "cancelled"
    assert reason == "agent shutting down"


def test_a_short_token_is_refused(monkeypatch):
    monkeypatch.setenv("KTRDR_AGENT_TOKEN", "short-token")
    with pytest.raises(CommandError, match="at least 32"):
        call_command("run_agent", "--roles", "training")


@pytest.mark.slow
def test_an_agent_runs_without_debug_pages(agent):
    page = agent.get("/no-such-page/")
    assert page.status_code == 404
    assert "URLconf" not in page.text  # Django's debug 404 lists every URL pattern
    assert agent.get("/api/v1/health").json()["status"] == "ok"
