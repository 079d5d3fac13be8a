"""Hostile input to the API: a 4xx in the error envelope naming the field, never a 500 or a page,
and never memory that grows with what the client sends (docs/architecture.md §10)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

HUGE = "9223372036854775808"


def envelope(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()["error"]
    assert set(body) == {"code", "message", "details"}
    return body


@pytest.mark.parametrize(
    "path", ["/api/v1/operations/", "/api/v1/training/models/", "/api/v1/operations/x/metrics/"]
)
def test_offsets_and_cursors_past_any_integer_are_a_400_naming_them(api, path):
    param = "cursor" if "metrics" in path else "offset"
    body = envelope(api.get(path, {param: HUGE}), 400)
    assert param in body["details"]


def test_the_operations_page_survives_a_huge_offset(logged_in):
    assert logged_in.get("/operations/", {"offset": HUGE}).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/operations/countdown/",
        "/api/v1/operations/op_x/cancel/",
        "/api/v1/training/runs/",
        "/api/v1/training/strategies/validate/",
    ],
)
def test_deeply_nested_json_is_a_400_not_a_recursion_error(api, path):
    body = envelope(api.post(path, "[" * 100_000, content_type="application/json"), 400)
    assert "body" in body["details"]
    assert "nested deeper" in body["message"]


def test_a_body_over_the_limit_is_a_400_read_no_further(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api.post(
        "/api/v1/operations/countdown/",
        json.dumps({"steps": 2, "pad": "x" * 5000}),
        content_type="application/json",
    )
    body = envelope(response, 400)
    assert "larger than 1,000 bytes" in body["message"]


def test_a_body_that_is_not_an_object_is_refused(api):
    body = envelope(
        api.post("/api/v1/operations/countdown/", "[]", content_type="application/json"), 400
    )
    assert "must be a JSON object" in body["message"]


def test_empty_multipart_bodies_answer_with_the_envelope(api):
    cancel = api.post("/api/v1/operations/op_missing/cancel/", {}, format="multipart")
    envelope(cancel, 404)
    validate = api.post("/api/v1/training/strategies/validate/", {}, format="multipart")
    assert "yaml" in envelope(validate, 400)["details"]


def test_unknown_paths_and_malformed_ids_are_a_json_404(api):
    assert envelope(api.get("/api/v1/training/models/abc/"), 404)["code"] == "not_found"
    assert envelope(api.get("/api/v1/no-such-thing/"), 404)["code"] == "not_found"


def test_wrong_method_and_media_type_are_in_the_envelope(api):
    envelope(api.delete("/api/v1/operations/"), 405)
    envelope(api.post("/api/v1/operations/countdown/", "steps=2", content_type="text/plain"), 415)


def test_a_countdown_cannot_hold_a_worker_for_days(api):
    body = envelope(
        api.post("/api/v1/operations/countdown/", {"steps": 100_000, "step_seconds": 60}), 400
    )
    assert "steps" in body["details"]


def test_error_answers_stay_small_whatever_was_sent(api):
    response = api.post(
        "/api/v1/training/runs/",
        {"strategy": "x", "symbols": ["A" * 5000] * 20, "agent": "b" * 100_000},
        format="json",
    )
    assert 400 <= response.status_code < 500
    assert len(response.content) < 40_000
