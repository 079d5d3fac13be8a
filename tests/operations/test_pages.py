"""Operations pages: login required, live rows by htmx polling, terminal fragments stop polling."""

from __future__ import annotations

from html import escape

import pytest

from operations import services
from operations.local import local_runs
from operations.models import Executor
from tests.fakes.workers import GatedWork, launch, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("path", ["/operations/", "/operations/op_x/"])
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


def _table(client, path: str = "/operations/", etag: str | None = None):
    headers = {"HX-Request": "true", "HX-Target": "operations-table"}
    if etag:
        headers["If-None-Match"] = etag
    return client.get(path, headers=headers)


def test_the_list_polls_one_fragment_for_all_its_rows(logged_in):
    work = GatedWork()
    running = launch(work)
    finished = services.operation_create(operation_type="test", executor=Executor.LOCAL)
    services.operation_request_cancel(operation_id=finished.operation_id)
    assert work.started.wait(10)
    page = logged_in.get("/operations/").content.decode()
    # One poller, on the table; no row polls on its own.
    assert page.count("data-poll-url=") == 1
    assert 'id="operations-table"' in page
    assert 'data-poll-url="/operations/"' in page
    assert "every 1s" not in page
    assert "/row/" not in page
    assert f"row-{running.operation_id}" in page
    assert f"row-{finished.operation_id}" in page

    table = _table(logged_in)
    assert table.status_code == 200
    html = table.content.decode()
    assert html.lstrip().startswith('<div id="operations-table"')
    assert table["ETag"]
    assert f'data-etag="{escape(table["ETag"])}"' in html
    # Nothing changed: the poll that sends its ETag back gets 304 and no body.
    same = _table(logged_in, etag=table["ETag"])
    assert same.status_code == 304
    assert same.content == b""
    work.release.set()
    assert local_runs.wait_idle(10)
    done = _table(logged_in, etag=table["ETag"])
    assert done.status_code == 200
    assert done["ETag"] != table["ETag"]
    assert f'id="row-{running.operation_id}" class="status-completed"' in done.content.decode()


def test_the_list_fragment_keeps_its_filters_in_its_poll_url(logged_in):
    services.operation_create(operation_type="test", executor=Executor.AGENT)
    html = _table(logged_in, "/operations/?status=pending&operation_type=test").content.decode()
    assert 'data-poll-url="/operations/?status=pending&amp;operation_type=test"' in html


def test_the_type_filter_offers_the_registered_kinds(logged_in):
    services.operation_create(operation_type="legacy_kind", executor=Executor.AGENT)
    page = logged_in.get("/operations/").content.decode()
    for kind in ("countdown", "training", "data_load"):
        assert f'<option value="{kind}"' in page
    # The filter lists what this installation runs, not one option per stored row.
    assert '<option value="legacy_kind"' not in page
    chosen = logged_in.get("/operations/?operation_type=legacy_kind").content.decode()
    assert '<option value="legacy_kind" selected' in chosen


def test_the_list_counts_up_to_a_limit(logged_in, monkeypatch):
    from operations import views

    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    monkeypatch.setattr(views, "COUNT_LIMIT", 3)
    for _ in range(5):
        services.operation_create(operation_type="test", executor=Executor.AGENT)
    html = logged_in.get("/operations/").content.decode()
    assert "more than 3 operations" in html
    assert "older →" in html
    monkeypatch.setattr(views, "COUNT_LIMIT", 10)
    assert "5 operations" in logged_in.get("/operations/").content.decode()


def test_htmx_filter_returns_only_the_table(logged_in):
    services.operation_create(operation_type="test", executor=Executor.AGENT)
    resp = logged_in.get(
        "/operations/?status=pending", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="operations-table"
    )
    html = resp.content.decode()
    assert html.lstrip().startswith('<div id="operations-table"')
    assert "<html" not in html


def test_detail_page_shows_progress_metrics_and_a_cancel_form(logged_in, user):
    work = GatedWork(metrics_before_wait=2)
    op = launch(work, user=user)
    assert work.started.wait(10)
    html = logged_in.get(f"/operations/{op.operation_id}/").content.decode()
    assert 'id="operation-live"' in html
    assert f'data-poll-url="/operations/{op.operation_id}/?cursor=' in html
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
    final = live_fragment()
    assert "cancelled" in final
    assert "data-poll-url" not in final  # the terminal fragment stops the poller


def _live(client, op_id: str, cursor: int, etag: str | None = None):
    headers = {"HX-Request": "true", "HX-Target": "operation-live"}
    if etag:
        headers["If-None-Match"] = etag
    return client.get(f"/operations/{op_id}/?cursor={cursor}", headers=headers)


def test_the_live_section_hands_over_only_records_past_its_cursor(logged_in, user):
    work = GatedWork(metrics_before_wait=3)
    op = launch(work, user=user)
    assert work.started.wait(10)
    assert wait_until(
        lambda: "3 metric records" in _live(logged_in, op.operation_id, 0).content.decode()
    )
    page = logged_in.get(f"/operations/{op.operation_id}/").content.decode()
    # The page draws the records it has and polls on from its cursor.
    assert page.count("<tr><td>") == 3
    assert f'data-poll-url="/operations/{op.operation_id}/?cursor=3&amp;log_cursor=' in page

    caught_up = _live(logged_in, op.operation_id, 3)
    assert "hx-swap-oob" not in caught_up.content.decode()
    behind = _live(logged_in, op.operation_id, 1).content.decode()
    assert behind.count("<tr><td>") == 2  # seq 1 and 2, appended to the page's table
    assert 'hx-swap-oob="beforeend:#metric-rows"' in behind
    assert "?cursor=3" in behind
    # Nothing changed since: 304, nothing rendered.
    again = _live(logged_in, op.operation_id, 3, etag=caught_up["ETag"])
    assert again.status_code == 304
    work.release.set()
    assert local_runs.wait_idle(10)
    ended = _live(logged_in, op.operation_id, 3, etag=caught_up["ETag"])
    assert ended.status_code == 200
    assert "completed" in ended.content.decode()


def test_a_page_far_behind_catches_up_in_bounded_steps(logged_in, user, monkeypatch):
    from operations import views

    monkeypatch.setattr(views, "APPEND_LIMIT", 2)
    work = GatedWork(metrics_before_wait=5)
    op = launch(work, user=user)
    assert work.started.wait(10)
    assert wait_until(
        lambda: "5 metric records" in _live(logged_in, op.operation_id, 0).content.decode()
    )
    first = _live(logged_in, op.operation_id, 0).content.decode()
    assert first.count("<tr><td>") == 2
    assert "?cursor=2" in first
    assert "data-poll-now" in first
    last = _live(logged_in, op.operation_id, 4).content.decode()
    assert last.count("<tr><td>") == 1
    assert "data-poll-now" not in last
    # A cursor past the end (or garbage) is clamped, never an error.
    assert _live(logged_in, op.operation_id, 10**12).status_code == 200
    assert (
        logged_in.get(
            f"/operations/{op.operation_id}/?cursor=abc",
            headers={"HX-Request": "true", "HX-Target": "operation-live"},
        ).status_code
        == 200
    )
    work.release.set()
    assert local_runs.wait_idle(10)


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


def test_an_htmx_cancel_answer_carries_its_own_message(logged_in, user):
    work = GatedWork()
    op = launch(work, user=user)
    assert work.started.wait(10)
    resp = logged_in.post(
        f"/operations/{op.operation_id}/cancel/",
        {"cursor": "0"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="operation-live",
    )
    assert resp.status_code == 200
    html = resp.content.decode()
    assert html.lstrip().startswith('<section id="operation-live"')
    # The message is swapped into the page's messages region by the same answer...
    assert '<div id="messages" hx-swap-oob="true">' in html
    assert f'<p class="flash success">Cancel requested for {op.operation_id}</p>' in html
    assert local_runs.wait_idle(10)
    # ... and consumed by it: the next page shows none.
    later = logged_in.get("/operations/").content.decode()
    assert "Cancel requested for" not in later
    assert 'class="flash' not in later


def test_an_htmx_cancel_refused_shows_the_reason_in_its_answer(logged_in, user):
    op = services.operation_create(operation_type="test", executor=Executor.LOCAL, created_by=user)
    services.operation_request_cancel(operation_id=op.operation_id)
    resp = logged_in.post(f"/operations/{op.operation_id}/cancel/", HTTP_HX_REQUEST="true")
    html = resp.content.decode()
    assert '<div id="messages" hx-swap-oob="true">' in html
    assert '<p class="flash error">' in html
    assert "cannot become cancelled" in html
    assert 'class="flash' not in logged_in.get("/operations/").content.decode()


def test_a_plain_cancel_post_redirects_and_the_next_page_shows_the_message(logged_in, user):
    work = GatedWork()
    op = launch(work, user=user)
    assert work.started.wait(10)
    resp = logged_in.post(f"/operations/{op.operation_id}/cancel/")
    assert resp.status_code == 302
    assert resp["Location"] == f"/operations/{op.operation_id}/"
    page = logged_in.get(resp["Location"]).content.decode()
    assert f'<p class="flash success">Cancel requested for {op.operation_id}</p>' in page
    assert '<div id="messages">' in page  # the page's own region, no out-of-band swap
    assert local_runs.wait_idle(10)
    assert "Cancel requested for" not in logged_in.get("/operations/").content.decode()
