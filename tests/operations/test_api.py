"""The operations API (v1): shapes, error envelope, auth, parameters."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from operations import services
from operations.local import local_runs
from operations.models import Executor
from tests.fakes.workers import GatedWork, launch, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

OPERATION_KEYS = {
    "operation_id",
    "operation_type",
    "status",
    "created_at",
    "started_at",
    "completed_at",
    "updated_at",
    "progress",
    "metadata",
    "result_summary",
    "error_message",
    "location",
    "cancel",
    "freshness",
}


def _finished_countdown(api, steps=4):
    resp = api.post(
        "/api/v1/operations/countdown/", {"steps": steps, "step_seconds": 0}, format="json"
    )
    assert resp.status_code == 202, resp.content
    assert local_runs.wait_idle(10)
    return resp.json()["operation_id"]


def test_start_answers_202_with_the_operation_shape(api):
    resp = api.post("/api/v1/operations/countdown/", {"steps": 2, "step_seconds": 0}, format="json")
    assert resp.status_code == 202
    body = resp.json()
    assert set(body) == OPERATION_KEYS
    assert body["operation_id"].startswith("op_countdown_")
    assert set(body["progress"]) == {
        "percentage",
        "message",
        "phase",
        "steps_completed",
        "steps_total",
        "items_processed",
        "items_total",
        "context",
        "eta_seconds",
    }
    assert body["location"] == {"executor": "local", "agent": "", "remote_operation_id": ""}
    assert set(body["cancel"]) == {"requested_at", "acknowledged_at", "reason"}
    assert set(body["freshness"]) == {"refreshed_at", "age_seconds", "stale", "unreachable_since"}


def test_list_get_metrics_and_results_of_a_finished_operation(api):
    op_id = _finished_countdown(api, steps=4)
    listing = api.get("/api/v1/operations/").json()
    assert listing["total"] == 1
    assert listing["active_count"] == 0
    assert listing["operations"][0]["operation_id"] == op_id
    got = api.get(f"/api/v1/operations/{op_id}/?force_refresh=true").json()
    assert got["status"] == "completed"
    assert got["progress"]["percentage"] == 100.0
    metrics = api.get(f"/api/v1/operations/{op_id}/metrics/?cursor=1&limit=2").json()
    assert [m["seq"] for m in metrics["metrics"]] == [1, 2]
    assert metrics["new_cursor"] == 3
    assert {"seq", "kind", "recorded_at", "step"} <= set(metrics["metrics"][0])
    empty = api.get(f"/api/v1/operations/{op_id}/metrics/?cursor=4").json()
    assert empty == {"metrics": [], "new_cursor": 4}
    results = api.get(f"/api/v1/operations/{op_id}/results/").json()
    assert results["result_summary"]["steps"] == 4


def test_cancel_of_finished_operation_is_rejected_with_409(api):
    op_id = _finished_countdown(api)
    resp = api.post(f"/api/v1/operations/{op_id}/cancel/", {"reason": "too late"}, format="json")
    assert resp.status_code == 409
    error = resp.json()["error"]
    assert error["code"] == "illegal_transition"
    assert "completed" in error["message"]


def test_cancel_of_running_operation_answers_202_and_ends_cancelled(api, user):
    work = GatedWork()
    op = launch(work, user=user)
    assert work.started.wait(10)
    assert wait_until(
        lambda: (
            api.get(f"/api/v1/operations/{op.operation_id}/?force_refresh=true").json()["status"]
            == "running"
        )
    )
    resp = api.post(
        f"/api/v1/operations/{op.operation_id}/cancel/", {"reason": "stop"}, format="json"
    )
    assert resp.status_code == 202
    assert resp.json()["status"] in {"cancelling", "cancelled"}
    assert resp.json()["cancel"]["reason"] == "stop"
    assert local_runs.wait_idle(10)
    final = api.get(f"/api/v1/operations/{op.operation_id}/?force_refresh=true").json()
    assert final["status"] == "cancelled"
    again = api.post(f"/api/v1/operations/{op.operation_id}/cancel/", {}, format="json")
    assert again.status_code == 409


def test_results_of_an_active_operation_are_a_409(api):
    op = services.operation_create(operation_type="test", executor=Executor.AGENT)
    resp = api.get(f"/api/v1/operations/{op.operation_id}/results/")
    assert resp.status_code == 409
    assert resp.json()["error"]["code"] == "conflict"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/operations/op_nope/",
        "/api/v1/operations/op_nope/metrics/",
        "/api/v1/operations/op_nope/results/",
    ],
)
def test_unknown_id_is_a_404_envelope(api, path):
    resp = api.get(path)
    assert resp.status_code == 404
    body = resp.json()
    assert body["error"]["code"] == "not_found"
    assert "op_nope" in body["error"]["message"]


def test_cancel_of_unknown_id_is_a_404_envelope(api):
    resp = api.post("/api/v1/operations/op_nope/cancel/", {}, format="json")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/operations/"),
        ("get", "/api/v1/operations/op_x/"),
        ("get", "/api/v1/operations/op_x/metrics/"),
        ("post", "/api/v1/operations/op_x/cancel/"),
        ("post", "/api/v1/operations/countdown/"),
        ("get", "/api/schema/"),
    ],
)
def test_no_credentials_is_401(method, path):
    resp = getattr(APIClient(), method)(path)
    assert resp.status_code == 401
    if path.startswith("/api/v1/"):
        assert resp.json()["error"]["code"] == "not_authenticated"


def test_a_wrong_token_is_401():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert client.get("/api/v1/operations/").status_code == 401


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=finished", "status"),
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("offset=-1", "offset"),
        ("active_only=maybe", "active_only"),
    ],
)
def test_bad_list_parameters_are_400_naming_the_parameter(api, query, field):
    resp = api.get(f"/api/v1/operations/?{query}")
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["details"]
    assert field in error["message"]


@pytest.mark.parametrize(
    ("query", "field"), [("cursor=-1", "cursor"), ("cursor=x", "cursor"), ("limit=0", "limit")]
)
def test_bad_metrics_parameters_are_400_naming_the_parameter(api, query, field):
    op_id = _finished_countdown(api, steps=1)
    resp = api.get(f"/api/v1/operations/{op_id}/metrics/?{query}")
    assert resp.status_code == 400
    assert field in resp.json()["error"]["details"]


def test_bad_start_parameters_are_400_naming_the_field(api):
    resp = api.post("/api/v1/operations/countdown/", {"steps": -5}, format="json")
    assert resp.status_code == 400
    assert "steps" in resp.json()["error"]["details"]


def test_list_filters_by_status_and_active_only(api):
    done = _finished_countdown(api, steps=1)
    pending = services.operation_create(operation_type="test", executor=Executor.AGENT)
    by_status = api.get("/api/v1/operations/?status=completed").json()
    assert [o["operation_id"] for o in by_status["operations"]] == [done]
    active = api.get("/api/v1/operations/?active_only=true").json()
    assert [o["operation_id"] for o in active["operations"]] == [pending.operation_id]
    assert active["active_count"] == 1


def test_session_authentication_works_for_the_browsable_api(logged_in):
    resp = logged_in.get("/api/v1/operations/", HTTP_ACCEPT="text/html")
    assert resp.status_code == 200
    assert b"Operation List" in resp.content


def test_openapi_schema_and_local_swagger_ui(logged_in):
    schema = logged_in.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/operations/{operation_id}/metrics/" in paths
    docs = logged_in.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn" not in html.lower()


def test_fast_rendering_equals_the_serializer_for_every_state(api):
    from operations import selectors
    from operations.serializers import OperationSerializer, operation_payload, serialize_operation

    done = _finished_countdown(api, steps=2)
    pending = services.operation_create(operation_type="test", executor=Executor.AGENT, agent="a")
    running = services.operation_create(operation_type="test", executor=Executor.AGENT, agent="a")
    services.operation_start(operation_id=running.operation_id)
    services.operation_mark_unreachable(operation_id=running.operation_id, error="down")
    cancelled = services.operation_create(operation_type="test", executor=Executor.LOCAL)
    services.operation_request_cancel(operation_id=cancelled.operation_id, reason="r")
    for op_id in (done, pending.operation_id, running.operation_id, cancelled.operation_id):
        op = selectors.operation_get(operation_id=op_id, force_refresh=True)
        fast = serialize_operation(op)
        slow = OperationSerializer(operation_payload(op)).data
        assert OperationSerializer(data=fast).is_valid()
        # age_seconds moves between the two renderings; everything else must be identical.
        assert isinstance(fast["freshness"].pop("age_seconds"), (float, type(None)))
        slow["freshness"].pop("age_seconds")
        assert fast == slow


def test_fast_rendering_equals_the_serializer_in_another_time_zone(api):
    from django.utils import timezone

    from operations import selectors
    from operations.serializers import OperationSerializer, operation_payload, serialize_operation

    op = selectors.operation_get(operation_id=_finished_countdown(api, steps=2))
    with timezone.override("America/New_York"):
        fast = serialize_operation(op)
        slow = OperationSerializer(operation_payload(op)).data
    fast["freshness"].pop("age_seconds")
    slow["freshness"].pop("age_seconds")
    assert fast == slow
    assert fast["created_at"].endswith(("-05:00", "-04:00"))
    # A progress written loosely (numbers as text, holes, an ETA on a running operation) is
    # normalised into the contract's types (the serializer would pass the holes through).
    running = services.operation_create(operation_type="test", executor=Executor.LOCAL)
    services.operation_start(operation_id=running.operation_id)
    running.progress = {"percentage": "12.5", "steps_completed": None, "eta_seconds": "3",
                        "message": None, "context": None, "unknown": 1}  # fmt: skip
    fast = serialize_operation(running)
    assert OperationSerializer(data=fast).is_valid()
    assert fast["progress"] == {
        "percentage": 12.5, "message": "", "phase": "", "steps_completed": 0, "steps_total": 0,
        "items_processed": 0, "items_total": 0, "context": {}, "eta_seconds": 3.0,
    }  # fmt: skip


def test_session_api_calls_need_the_csrf_token_to_change_anything(django_user_model):
    from django.test import Client

    user = django_user_model.objects.create_user(username="csrf", password="x")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.get("/api/v1/operations/").status_code == 200
    refused = strict.post(
        "/api/v1/operations/countdown/", {"steps": 1}, content_type="application/json"
    )
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["error"]["message"]
    page = strict.get("/operations/")
    token = page.cookies["csrftoken"].value
    accepted = strict.post(
        "/api/v1/operations/countdown/",
        {"steps": 1, "step_seconds": 0},
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    assert accepted.status_code == 202, accepted.content


def test_the_schema_names_the_session_and_token_schemes(logged_in):
    schema = logged_in.get("/api/schema/", headers={"Accept": "application/json"})
    schemes = schema.json()["components"]["securitySchemes"]
    assert {"cookieAuth", "tokenAuth"} <= set(schemes)


def test_a_polled_answer_is_what_drf_would_render(api, logged_in):
    from rest_framework.renderers import JSONRenderer

    op_id = _finished_countdown(api, steps=2)
    for path in (f"/api/v1/operations/{op_id}/", f"/api/v1/operations/{op_id}/metrics/",
                 f"/api/v1/operations/{op_id}/logs/"):  # fmt: skip
        fast = logged_in.get(path)
        assert fast.headers["Content-Type"] == "application/json"
        assert fast.headers["Vary"] == "Accept, Cookie"
        assert fast.content == JSONRenderer().render(fast.json())
        indented = logged_in.get(path, headers={"Accept": "application/json; indent=2"})
        assert indented.json().keys() == fast.json().keys()
        assert b"\n  " in indented.content
        browsable = logged_in.get(path, headers={"Accept": "text/html"})
        assert browsable.headers["Content-Type"].startswith("text/html")
