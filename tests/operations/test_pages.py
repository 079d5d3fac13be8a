"""Operations pages: login required, live rows by htmx polling, terminal fragments stop polling."""

from __future__ import annotations

import pytest

from operations import services
from operations.local import local_runs
from operations.models import Executor
from tests.fakes.workers import GatedWork, launch, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("path", ["/operations/", "/operations/op_x/", "/operations/op_x/row/"])
def test_pages_require_login(client, path):
    resp = client.get(path)
    assert resp.status_code == 302
    assert resp["Location"].startswith("/login/")


def test_root_redirects_to_the_operations_list(logged_in):
    resp = logged_in.get("/")
    assert resp.status_code == 302
    assert resp["Location"] == "/operations/"


def test_login_page_logs_in(client, user):
    page = client.get("/login/")
    assert page.status_code == 200
    assert b"csrfmiddlewaretoken" in page.content
    resp = client.post("/login/", {"username": "alice", "password": "s3cret-pass!"})
    assert resp.status_code == 302
    assert client.get("/operations/").status_code == 200


def test_running_rows_poll_and_finished_rows_do_not(logged_in):
    work = GatedWork()
    running = launch(work)
    finished = services.operation_create(operation_type="test", executor=Executor.LOCAL)
    services.operation_request_cancel(operation_id=finished.operation_id)
    assert work.started.wait(10)
    page = logged_in.get("/operations/").content.decode()
    assert f'hx-get="/operations/{running.operation_id}/row/"' in page
    assert f'hx-get="/operations/{finished.operation_id}/row/"' not in page
    assert 'hx-trigger="every 1s"' in page

    row = logged_in.get(f"/operations/{running.operation_id}/row/", HTTP_HX_REQUEST="true")
    assert row.status_code == 200
    assert b"<tr" in row.content
    assert b"hx-get" in row.content
    work.release.set()
    assert local_runs.wait_idle(10)
    row = logged_in.get(f"/operations/{running.operation_id}/row/", HTTP_HX_REQUEST="true")
    html = row.content.decode()
    assert "completed" in html
    assert "hx-get" not in html  # the terminal fragment stops the poller


def test_htmx_filter_returns_only_the_table(logged_in):
    services.operation_create(operation_type="test", executor=Executor.AGENT)
    resp = logged_in.get(
        "/operations/?status=pending", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="operations-table"
    )
    html = resp.content.decode()
    assert html.lstrip().startswith('<div id="operations-table">')
    assert "<html" not in html


def test_detail_page_shows_progress_metrics_and_a_cancel_form(logged_in, user):
    work = GatedWork(metrics_before_wait=2)
    op = launch(work, user=user)
    assert work.started.wait(10)
    html = logged_in.get(f"/operations/{op.operation_id}/").content.decode()
    assert 'id="operation-live"' in html
    assert f'hx-get="/operations/{op.operation_id}/"' in html
    assert "csrfmiddlewaretoken" in html
    assert "Cancel" in html

    def live_fragment() -> str:
        return logged_in.get(
            f"/operations/{op.operation_id}/",
            HTTP_HX_REQUEST="true",
            HTTP_HX_TARGET="operation-live",
        ).content.decode()

    live = live_fragment()
    assert live.lstrip().startswith('<section id="operation-live"')
    # What the worker reported shows within one TTL (a pull just before it may be served).
    assert wait_until(lambda: "waiting at the gate" in live_fragment())
    resp = logged_in.post(f"/operations/{op.operation_id}/cancel/", HTTP_HX_REQUEST="true")
    assert resp.status_code == 200
    assert local_runs.wait_idle(10)
    final = logged_in.get(
        f"/operations/{op.operation_id}/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="operation-live"
    ).content.decode()
    assert "cancelled" in final
    assert "hx-get" not in final


def test_cancel_of_a_finished_operation_shows_a_message_not_an_error(logged_in, user):
    op = services.operation_create(operation_type="test", executor=Executor.LOCAL, created_by=user)
    services.operation_request_cancel(operation_id=op.operation_id)
    resp = logged_in.post(f"/operations/{op.operation_id}/cancel/", follow=True)
    assert resp.status_code == 200
    assert b"cannot become cancelled" in resp.content


def test_unknown_operation_page_is_404(logged_in):
    assert logged_in.get("/operations/op_missing/").status_code == 404


def test_cancel_form_needs_csrf(user):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    op = services.operation_create(operation_type="test", executor=Executor.AGENT)
    assert client.post(f"/operations/{op.operation_id}/cancel/").status_code == 403


def test_countdown_form_starts_an_operation_and_rejects_bad_input(logged_in):
    resp = logged_in.post("/operations/countdown/", {"steps": 2, "step_seconds": 0})
    assert resp.status_code == 302
    assert resp["Location"].startswith("/operations/op_countdown_")
    bad = logged_in.post("/operations/countdown/", {"steps": "x", "step_seconds": 0}, follow=True)
    assert b"steps: steps must be an integer" in bad.content
    assert local_runs.wait_idle(10)
