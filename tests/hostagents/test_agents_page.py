"""The agents page polls its table: one fragment, ETag/304, reachability and work as they change."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command

from hostagents.models import Agent
from tests.hostagents.conftest import free_port

pytestmark = pytest.mark.django_db

POLL = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "agents-table"}


@pytest.fixture
def viewer(client, django_user_model, backend_settings):
    # Health stays cached through the test: only what the test changes changes the table.
    backend_settings.KTRDR = {**backend_settings.KTRDR, "AGENT_HEALTH_TTL": 600.0}
    client.force_login(django_user_model.objects.create_user("viv", password="pw-viv-12345"))
    return client


def test_the_agents_table_is_polled_and_answers_304_while_nothing_changes(viewer):
    call_command("agents", "add", "down", f"http://127.0.0.1:{free_port()}", stdout=StringIO())
    page = viewer.get("/agents/").content.decode()
    table = re.search(r'<div id="agents-table"[^>]*>', page).group(0)
    assert 'data-poll-url="/agents/"' in table

    poll = viewer.get("/agents/", **POLL)
    body = poll.content.decode()
    assert poll.status_code == 200
    assert body.lstrip().startswith('<div id="agents-table"')
    assert "<h1>" not in body
    assert 'id="agent-down"' in body
    assert "unreachable" in body
    assert "private" in poll["Cache-Control"]

    same = viewer.get("/agents/", HTTP_IF_NONE_MATCH=poll["ETag"], **POLL)
    assert same.status_code == 304

    # Reachability changes (here: the agent comes back with work running): a new table.
    Agent.objects.filter(name="down").update(
        health={"running_count": 2, "version": "9.9"}, last_error=""
    )
    changed = viewer.get("/agents/", HTTP_IF_NONE_MATCH=poll["ETag"], **POLL)
    assert changed.status_code == 200
    assert changed["ETag"] != poll["ETag"]
    row = re.search(r'<tr id="agent-down">.*?</tr>', changed.content.decode(), re.S).group(0)
    assert ">reachable<" in row
    assert "<td>2</td>" in row
