"""The agent registry: settings seeding, the `agents` command, the agents API and page, health
pulled on look (TTL-cached), backend health."""

from __future__ import annotations

import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from hostagents.client import client_for
from hostagents.models import Agent
from hostagents.selectors import agent_get, agent_list
from hostagents.services import parse_agents_setting
from tests.hostagents.conftest import free_port

pytestmark = pytest.mark.django_db(transaction=True)


def test_agents_setting_is_parsed_and_bad_entries_are_reported():
    agents, problems = parse_agents_setting(
        "gpu1=http://gpu-box.example:8101, ib1=http://127.0.0.1:8102/,bad,x=ftp://h,=http://h:1"
    )
    assert agents == {"gpu1": "http://gpu-box.example:8101", "ib1": "http://127.0.0.1:8102"}
    assert len(problems) == 3


def test_agents_setting_seeds_the_registry_and_follows_url_changes(backend_settings):
    backend_settings.KTRDR = {**backend_settings.KTRDR, "AGENTS": "gpu1=http://h1:8101"}
    assert [a.name for a in agent_list(pull_health=False)] == ["gpu1"]
    backend_settings.KTRDR = {**backend_settings.KTRDR, "AGENTS": "gpu1=http://h2:8101"}
    assert agent_list(pull_health=False)[0].base_url == "http://h2:8101"
    assert Agent.objects.get().origin == "settings"


def test_agents_command_adds_lists_and_checks(backend_settings, agent):
    out = StringIO()
    call_command("agents", "add", "a1", agent.url, stdout=out)
    call_command("agents", "add", "a1", agent.url, stdout=out)  # idempotent
    call_command("agents", "add", "down", f"http://127.0.0.1:{free_port()}", stdout=out)
    call_command("agents", "list", stdout=out)
    assert "added a1" in out.getvalue()
    assert "updated a1" in out.getvalue()
    assert "not checked" in out.getvalue()

    checked = StringIO()
    with pytest.raises(CommandError, match="1 of 2 agents unreachable"):
        call_command("agents", "check", stdout=checked)
    assert "a1: ok" in checked.getvalue()
    assert "down: agent down: unreachable" in checked.getvalue()
    assert Agent.objects.get(name="a1").has_capability("training")
    with pytest.raises(CommandError, match="must be http"):
        call_command("agents", "add", "bad", "not-a-url", stdout=out)


def test_agent_health_is_pulled_when_someone_looks_and_cached_for_the_ttl(backend_settings, agent):
    call_command("agents", "add", "a1", agent.url, stdout=StringIO())
    backend_settings.KTRDR = {**backend_settings.KTRDR, "AGENT_HEALTH_TTL": 0.5}
    first = agent_get(name="a1")
    client = client_for(first)
    for _ in range(5):
        agent_get(name="a1")
    assert client.requests_sent[("GET", "health")] == 1
    time.sleep(0.55)
    agent_get(name="a1")
    assert client.requests_sent[("GET", "health")] == 2
    assert first.reachable


def test_agents_api_lists_the_registry_with_pulled_health(backend_settings, api, agent):
    call_command("agents", "add", "a1", agent.url, stdout=StringIO())
    call_command("agents", "add", "down", f"http://127.0.0.1:{free_port()}", stdout=StringIO())

    listing = api.get("/api/v1/agents/")
    detail = api.get("/api/v1/agents/a1/", {"refresh": "true"})
    missing = api.get("/api/v1/agents/nope/")

    assert listing.status_code == 200
    by_name = {a["name"]: a for a in listing.json()["agents"]}
    assert by_name["a1"]["reachable"] is True
    assert by_name["a1"]["health"]["role"] == "agent"
    assert by_name["down"]["reachable"] is False
    assert "unreachable" in by_name["down"]["last_error"]
    assert detail.status_code == 200
    assert "training" in detail.json()["capabilities"]
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_agents_api_needs_an_authenticated_user(backend_settings, client):
    assert client.get("/api/v1/agents/").status_code == 401


def test_agents_page_requires_login_and_lists_agents_with_health(
    backend_settings, client, django_user_model, agent
):
    call_command("agents", "add", "a1", agent.url, stdout=StringIO())
    assert client.get("/agents/").status_code == 302
    user = django_user_model.objects.create_user("bob", password="pw-bob-12345")
    client.force_login(user)
    page = client.get("/agents/")
    assert page.status_code == 200
    assert b'id="agent-a1"' in page.content
    assert b"reachable" in page.content


def test_backend_health_tells_anonymous_callers_only_the_status(backend_settings, client):
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_backend_health_reports_role_running_operations_and_checks_to_users(backend_settings, api):
    response = api.get("/api/v1/health")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "ok"
    assert body["checks"] == {
        "database": {"ok": True, "error": ""},
        "cache": {"ok": True, "error": ""},
    }
    assert body["role"] == "backend"
    assert "local" in body["capabilities"]
    assert body["running_count"] == len(body["running_operations"])
    assert set(body["gpu"]) == {"available", "device_name", "device_count", "probing"}


def test_countdown_on_an_unknown_agent_is_404(backend_settings, api):
    assert api.post("/api/v1/agents/nope/countdown/", {}, format="json").status_code == 404


def test_countdown_on_an_unreachable_agent_is_503_and_starts_nothing(backend_settings, api):
    call_command("agents", "add", "down", f"http://127.0.0.1:{free_port()}", stdout=StringIO())
    response = api.post("/api/v1/agents/down/countdown/", {"steps": 2}, format="json")
    assert response.status_code == 503
    message = response.json()["error"]["message"]
    assert "agent down cannot run the countdown: unreachable" in message
    from operations.models import Operation

    assert not Operation.objects.filter(agent="down").exists()
