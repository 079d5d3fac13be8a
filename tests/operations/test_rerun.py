"""Re-run: a finished operation started again with the same inputs, linked to the old one —
from the operation page, the API and `manage.py ops rerun`."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from operations import execution
from operations.countdown import countdown_start
from operations.local import local_runs
from operations.models import Operation

pytestmark = pytest.mark.django_db(transaction=True)


def _finished(user=None, **params) -> Operation:
    op = countdown_start(user=user, **{"steps": 3, "step_seconds": 0, **params})
    assert local_runs.wait_idle(10)
    return Operation.objects.get(pk=op.pk)


def _running(user=None) -> Operation:
    return countdown_start(steps=1000, step_seconds=0.05, user=user)


def _stop(op: Operation) -> None:
    execution.operation_cancel(operation_id=op.operation_id, reason="test over")
    assert local_runs.wait_idle(10)


def test_api_rerun_starts_a_new_operation_with_the_same_inputs_linked_to_the_old(
    api, django_user_model
):
    bob = django_user_model.objects.create_user(username="bob", password="b0b-pass!")
    old = _finished(user=bob, steps=4, fail_at=4)
    assert old.status == "failed"
    resp = api.post(f"/api/v1/operations/{old.operation_id}/rerun/")
    assert resp.status_code == 202, resp.content
    body = resp.json()
    assert body["operation_id"] != old.operation_id
    assert body["operation_type"] == "countdown"
    assert body["metadata"]["rerun_of"] == old.operation_id
    for key in ("steps", "step_seconds", "fail_at"):
        assert body["metadata"][key] == old.metadata[key]
    assert local_runs.wait_idle(10)
    new = Operation.objects.get(operation_id=body["operation_id"])
    assert new.rerun_of == old
    assert list(old.reruns.all()) == [new]
    # The same inputs give the same outcome; the new one belongs to whoever re-ran it.
    assert new.status == "failed"
    assert "step 4 of 4" in new.error_message
    assert new.created_by.username == "alice"
    assert old.created_by.username == "bob"


def test_api_rerun_is_refused_with_409_while_the_operation_runs(api):
    op = _running()
    try:
        resp = api.post(f"/api/v1/operations/{op.operation_id}/rerun/")
        assert resp.status_code == 409
        assert resp.json()["error"]["code"] == "conflict"
        assert Operation.objects.count() == 1
    finally:
        _stop(op)


def test_api_rerun_of_an_unknown_operation_is_404_and_needs_login(api):
    assert api.post("/api/v1/operations/op_countdown_nope/rerun/").status_code == 404
    old = _finished()
    assert APIClient().post(f"/api/v1/operations/{old.operation_id}/rerun/").status_code in (
        401,
        403,
    )
    assert Operation.objects.count() == 1


def test_rerun_is_in_the_openapi_schema(api):
    schema = api.get("/api/schema/?format=json").json()
    post = schema["paths"]["/api/v1/operations/{operation_id}/rerun/"]["post"]
    assert post["operationId"] == "operations_rerun"
    assert {"202", "404", "409"} <= set(post["responses"])


def test_operation_page_offers_run_again_once_finished_and_it_starts_one(logged_in):
    running = _running()
    try:
        page = logged_in.get(f"/operations/{running.operation_id}/").content.decode()
        assert "Run again" not in page
    finally:
        _stop(running)
    old = _finished(steps=2)
    page = logged_in.get(f"/operations/{old.operation_id}/").content.decode()
    assert f'action="/operations/{old.operation_id}/rerun/"' in page
    assert "Run again" in page
    # "Edit and run": the countdown form of the list, pre-filled.
    assert "/operations/?steps=2&amp;step_seconds=0.0#countdown-form" in page
    form = logged_in.get("/operations/?steps=2&step_seconds=0.0").content.decode()
    assert 'name="steps" value="2"' in form

    resp = logged_in.post(f"/operations/{old.operation_id}/rerun/")
    assert resp.status_code == 302
    new = Operation.objects.exclude(pk__in=[old.pk, running.pk]).get()
    assert resp["Location"] == f"/operations/{new.operation_id}/"
    assert local_runs.wait_idle(10)
    page = logged_in.get(resp["Location"]).content.decode()
    assert "Re-run of" in page
    assert f'href="/operations/{old.operation_id}/"' in page
    page = logged_in.get(f"/operations/{old.operation_id}/").content.decode()
    assert "<dt>Re-runs</dt>" in page
    assert f'href="/operations/{new.operation_id}/"' in page


def test_page_rerun_needs_post_login_and_csrf(client, user):
    old = _finished()
    url = f"/operations/{old.operation_id}/rerun/"
    assert client.post(url)["Location"].startswith("/login/")
    client.force_login(user)
    assert client.get(url).status_code == 405
    strict = type(client)(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(url).status_code == 403
    assert Operation.objects.count() == 1


def test_page_rerun_of_a_running_operation_says_why_and_starts_nothing(logged_in):
    op = _running()
    try:
        resp = logged_in.post(f"/operations/{op.operation_id}/rerun/", follow=True)
        assert "it can be re-run once it has ended" in resp.content.decode()
        assert Operation.objects.count() == 1
    finally:
        _stop(op)


def test_ops_rerun_command_starts_and_waits_for_the_new_operation():
    old = _finished(steps=2)
    out = io.StringIO()
    call_command("ops", "rerun", old.operation_id, stdout=out)
    new = Operation.objects.exclude(pk=old.pk).get()
    assert f"started {new.operation_id} (re-run of {old.operation_id})" in out.getvalue()
    assert f"{new.operation_id} completed" in out.getvalue()
    assert new.rerun_of == old
    assert new.metadata["steps"] == 2
    assert new.created_by is None


def test_ops_rerun_command_refuses_an_active_or_unknown_operation():
    with pytest.raises(CommandError, match="does not exist"):
        call_command("ops", "rerun", "op_countdown_nope", stdout=io.StringIO())
    op = _running()
    try:
        with pytest.raises(CommandError, match="can be re-run once it has ended"):
            call_command("ops", "rerun", op.operation_id, stdout=io.StringIO())
    finally:
        _stop(op)


def test_stored_inputs_that_no_longer_validate_are_a_400_naming_the_field(api):
    old = _finished()
    Operation.objects.filter(pk=old.pk).update(metadata={**old.metadata, "steps": "many"})
    resp = api.post(f"/api/v1/operations/{old.operation_id}/rerun/")
    assert resp.status_code == 400
    assert "steps" in resp.json()["error"]["details"]


def test_ops_rerun_no_wait_refuses_work_that_would_die_with_the_command():
    old = _finished()
    with pytest.raises(CommandError, match="would run inside this command"):
        call_command("ops", "rerun", old.operation_id, "--no-wait", stdout=io.StringIO())
    assert Operation.objects.count() == 1
