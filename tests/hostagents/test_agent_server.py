"""The agent process itself: auth on every endpoint, loopback bind, health, the deprecated status,
idempotent starts and artifact headers (all against a real `run_agent` subprocess)."""

from __future__ import annotations

import hashlib
import time

import pytest
import requests

from operations.countdown import countdown_artifact_bytes
from tests.hostagents.conftest import AgentProcess, wait_for

pytestmark = pytest.mark.slow

ENDPOINTS = [
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/operations/"),
    ("GET", "/api/v1/operations/op_x/"),
    ("GET", "/api/v1/operations/op_x/metrics/"),
    ("GET", "/api/v1/operations/op_x/refresh/"),
    ("POST", "/api/v1/operations/op_x/cancel/"),
    ("GET", "/api/v1/operations/op_x/results/"),
    ("GET", "/api/v1/operations/op_x/artifacts/model.pt"),
    ("POST", "/api/v1/starts/"),
    ("GET", "/api/v1/starts/key"),
    ("POST", "/api/v1/blobs/missing"),
    ("GET", "/training/status/op_x"),
    ("GET", "/api/schema/"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_agent_endpoint_requires_the_bearer_token(agent: AgentProcess, method, path):
    url = f"{agent.url}{path}"
    anonymous = requests.request(method, url, timeout=10)
    wrong = requests.request(
        method, url, headers={"Authorization": "Bearer not-the-token"}, timeout=10
    )
    basic = requests.request(method, url, headers={"Authorization": "Basic eDp5"}, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert wrong.status_code == 401
    assert basic.status_code == 401
    assert anonymous.json()["error"]["code"] in {"not_authenticated", "authentication_failed"}


def test_agent_listens_on_loopback_only_by_default(agent):
    listening = set()
    with open("/proc/net/tcp") as fh:
        for line in fh.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port = local.split(":")
            if state == "0A" and int(port, 16) == agent.port:  # 0A = LISTEN
                listening.add(address)
    assert listening == {"0100007F"}  # 127.0.0.1, nothing else


def test_health_reports_role_capabilities_gpu_version_and_running_operations(agent):
    started = agent.start_work("countdown", {"steps": 50, "step_seconds": 0.1}).json()
    try:
        health = wait_for(
            lambda: (h := agent.get("/api/v1/health").json())["running_count"] >= 1 and h
        )
        assert health["status"] == "ok"
        assert health["role"] == "agent"
        assert health["roles"] == ["ib", "training"]
        assert {"training", "ib"} <= set(health["capabilities"])
        assert set(health["gpu"]) == {"available", "device_name", "device_count", "probing"}
        assert ("gpu" in health["capabilities"]) is health["gpu"]["available"]
        assert health["version"]
        running = {op["operation_id"] for op in health["running_operations"]}
        assert started["operation_id"] in running
    finally:
        agent.post(f"/api/v1/operations/{started['operation_id']}/cancel/", json={})


def test_deprecated_training_status_answers_the_old_format_and_points_to_the_new_api(agent):
    op = agent.start_work("countdown", {"steps": 2, "step_seconds": 0}).json()
    op_id = op["operation_id"]
    wait_for(lambda: agent.operation(op_id)["status"] == "completed")

    for session_id in (op_id, f"host_training_{op_id}"):
        response = agent.get(f"/training/status/{session_id}")
        body = response.json()
        assert response.status_code == 200
        assert body["deprecated"] is True
        assert body["use_instead"] == f"/api/v1/operations/{op_id}"
        assert body["session_id"] == session_id
        assert body["status"] == "completed"
        assert body["progress"]["percentage"] == 100.0
        assert "current_step" in body["progress"]
        assert response.headers["Deprecation"] == "true"
    assert agent.get("/training/status/nope").status_code == 404


def test_starts_with_the_same_idempotency_key_return_one_operation(agent):
    key = f"op_countdown_idem_{time.time_ns()}"
    answers = [
        agent.start_work("countdown", {"steps": 1, "step_seconds": 0}, key=key) for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [202, 200, 200]
    assert len({a.json()["operation_id"] for a in answers}) == 1
    other_type = agent.start_work("data_load", {}, key=key)
    assert other_type.status_code == 409


def test_artifact_download_carries_checksum_and_length(agent):
    op = agent.start_work(
        "countdown", {"steps": 1, "step_seconds": 0, "artifact_bytes": 70_000}
    ).json()
    op_id = op["operation_id"]
    done = wait_for(lambda: (o := agent.operation(op_id))["status"] == "completed" and o)
    manifest = done["result_summary"]["artifacts"]

    response = agent.get(f"/api/v1/operations/{op_id}/artifacts/countdown.bin")

    expected = hashlib.sha256(countdown_artifact_bytes(op_id, 70_000)).hexdigest()
    assert response.status_code == 200
    assert response.headers["X-Content-SHA256"] == expected
    assert response.headers["Content-Length"] == "70000"
    assert hashlib.sha256(response.content).hexdigest() == expected
    assert manifest == [{"name": "countdown.bin", "size": 70_000, "sha256": expected}]
    assert agent.get(f"/api/v1/operations/{op_id}/artifacts/other.bin").status_code == 404
    assert agent.get(f"/api/v1/operations/{op_id}/artifacts/..%2Fx").status_code == 404


def test_bad_start_input_is_a_400_naming_the_field(agent):
    response = agent.start_work("countdown", {"steps": 0})
    assert response.status_code == 400
    assert "steps" in response.json()["error"]["details"]
    not_object = agent.start_work("countdown", [1, 2])
    assert not_object.status_code == 400


def test_unknown_operation_is_a_404_in_the_error_envelope(agent):
    response = agent.get("/api/v1/operations/op_unknown_1/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_agent_without_the_ib_role_refuses_ib_loads_with_503(agent_factory):
    training_only = agent_factory("trainonly", roles="training")
    response = training_only.start_work(
        "data_load", {"symbol": "EURUSD", "timeframe": "1h", "source": "ib"}
    )
    assert response.status_code == 503
    assert "'ib' role" in response.json()["error"]["message"]


def test_unknown_agent_paths_are_a_json_404_behind_the_token(agent: AgentProcess):
    anonymous = requests.get(f"{agent.url}/api/v1/no-such-thing/", timeout=10)
    assert anonymous.status_code == 401
    known = agent.get("/api/v1/no-such-thing/")
    assert known.status_code == 404
    assert known.json()["error"]["code"] == "not_found"


def test_an_agent_serves_its_own_schema_with_its_start_and_error_answers(agent: AgentProcess):
    import yaml

    response = agent.get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.text)
    assert "/api/v1/starts/" in schema["paths"]
    start = schema["paths"]["/api/v1/starts/"]["post"]
    assert {"200", "202", "400", "401", "409", "503"} <= set(start["responses"])
    assert "/api/v1/operations/{operation_id}/" in schema["paths"]
