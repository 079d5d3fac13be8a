"""The contract test: real agent answers parse with the serializers the API renders with.

The upstream project lost its metrics for months to a host/backend cursor-shape mismatch; here
every answer kind the backend consumes is taken from a live agent and run through the parsers.
"""

from __future__ import annotations

import pytest

from hostagents.client import AgentClient
from hostagents.contract import parse_artifact_manifest
from tests.hostagents.conftest import TOKEN, AgentProcess, wait_for

pytestmark = pytest.mark.slow


def test_real_agent_answers_parse_with_the_api_serializers(agent: AgentProcess):
    raw_op = agent.start_work(
        "countdown", {"steps": 3, "step_seconds": 0.01, "artifact_bytes": 100}
    ).json()
    op_id = raw_op["operation_id"]
    wait_for(lambda: agent.operation(op_id)["status"] == "completed")
    client = AgentClient("contract", agent.url, TOKEN)

    operation = client.get_operation(op_id)
    records, new_cursor = client.get_metrics(op_id, cursor=0)
    tail, tail_cursor = client.get_metrics(op_id, cursor=2)
    none, same = client.get_metrics(op_id, cursor=3)
    refreshed, refreshed_records, refreshed_cursor = client.refresh(op_id, cursor=1)
    results = client.get_results(op_id)
    listing = client.list_operations(limit=5)
    health = client.health()
    manifest = parse_artifact_manifest(results["result_summary"], agent="contract")

    raw = agent.operation(op_id)
    assert operation["operation_id"] == raw["operation_id"] == op_id
    assert operation["status"] == "completed"
    assert operation["progress"] == raw["progress"]
    assert set(operation) == set(raw)
    assert [r["seq"] for r in records] == [0, 1, 2]
    assert new_cursor == 3
    assert [r["step"] for r in records] == [1, 2, 3]  # kind-specific fields pass through
    assert ([r["seq"] for r in tail], tail_cursor) == ([2], 3)
    assert (none, same) == ([], 3)
    # The one-request refresh joins the two answers above, in their shapes.
    assert set(refreshed) == set(operation)
    assert refreshed["progress"] == operation["progress"]
    assert (refreshed_records, refreshed_cursor) == (records[1:], 3)
    assert client.requests_sent[("GET", "refresh")] == 1
    assert results["result_summary"]["steps"] == 3
    assert manifest[0]["name"] == "countdown.bin"
    assert listing["total"] >= 1
    assert health["role"] == "agent"
