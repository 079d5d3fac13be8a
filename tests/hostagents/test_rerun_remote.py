"""Re-running work that ran on an agent: the new operation goes to an agent again, through the
same start path, and is linked to the old one on the backend."""

from __future__ import annotations

import pytest

from operations.models import Operation
from tests.hostagents.test_remote import follow, register, start_remote_countdown

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_rerun_of_a_remote_countdown_runs_on_an_agent_and_links_back(backend_settings, api, agent):
    register(agent)
    first = start_remote_countdown(api, steps=3, step_seconds=0)
    done, _ = follow(api, first["operation_id"])
    assert done["status"] == "completed"
    resp = api.post(f"/api/v1/operations/{first['operation_id']}/rerun/")
    assert resp.status_code == 202, resp.content
    again = resp.json()
    assert again["location"]["executor"] == "agent"
    assert again["metadata"]["rerun_of"] == first["operation_id"]
    ended, _ = follow(api, again["operation_id"])
    assert ended["status"] == "completed"
    assert ended["result_summary"]["steps"] == 3
    new = Operation.objects.get(operation_id=again["operation_id"])
    assert new.rerun_of.operation_id == first["operation_id"]
