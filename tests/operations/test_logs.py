"""Operation logs: caught where they are logged, stored with the next write of the row, served
by cursor through the API, the page and `ops logs` (docs/logs-and-retention.md)."""

from __future__ import annotations

import io
import logging
import threading
import time
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from operations import oplog, services
from operations.countdown import countdown_start
from operations.local import WorkContext, local_runs
from operations.models import Executor, OperationLog
from operations.oplog import (
    MAX_LINE_CHARS,
    OperationLogHandler,
    PendingLines,
    log_event,
    operation_context,
)
from tests.fakes.workers import launch, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

worker_log = logging.getLogger("tests.worker")


class TalkingWork:
    """Logs `first` lines, waits for `more`, logs `second` lines, waits for `release`, ends."""

    def __init__(self, first: int = 3, second: int = 2) -> None:
        self.first, self.second = first, second
        self.started = threading.Event()
        self.more = threading.Event()
        self.release = threading.Event()

    def _wait(self, event: threading.Event, ctx: WorkContext) -> None:
        while not event.wait(0.005):
            ctx.token.raise_if_cancelled("waiting")

    def __call__(self, ctx: WorkContext) -> dict[str, Any]:
        for i in range(self.first):
            worker_log.warning("first batch line %d", i)  # any logger: the thread says whose
        self.started.set()
        self._wait(self.more, ctx)
        for i in range(self.second):
            ctx.logger.info("second batch line %d", i)
        self._wait(self.release, ctx)
        return {}


def _call(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def _messages(op_id: str) -> list[str]:
    return list(
        OperationLog.objects.filter(operation__operation_id=op_id)
        .order_by("seq")
        .values_list("message", flat=True)
    )


# --- the handler, without a database ---------------------------------------------------------


def _record(handler: OperationLogHandler, logger_name: str = "t") -> logging.Logger:
    logger = logging.getLogger(logger_name)
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger


def test_the_handler_takes_lines_by_extra_or_by_the_workers_context_and_cuts_long_ones():
    buffer = PendingLines()
    logger = _record(OperationLogHandler(logging.INFO, buffer=buffer), "t.handler")
    logger.info("nobody's line")
    log_event(logger, logging.INFO, "op_a", "started", "running on %s", "this host")
    log_event(logger, logging.INFO, "op_a", "cache_hit", "entry 0.1 s old", capture=False)
    log_event(logger, logging.DEBUG, "op_a", "refresh", "below the handler's level")
    with operation_context("op_b"):
        logger.warning("x" * (MAX_LINE_CHARS * 3))
    assert buffer.operations() == ["op_a", "op_b"]
    [line] = buffer.drain("op_a")
    assert line["message"] == "started: running on this host"  # the id is the log's own
    assert line["event"] == "started"
    assert line["level"] == "INFO"
    [long] = buffer.drain("op_b")
    assert len(long["message"]) == MAX_LINE_CHARS
    assert long["message"].endswith(oplog.CUT_MARK)
    assert buffer.drain("op_a") == []


def test_the_buffer_is_a_bounded_ring_that_says_what_it_dropped():
    buffer = PendingLines(max_operations=2, max_lines=5)
    logger = _record(OperationLogHandler(logging.INFO, buffer=buffer), "t.ring")
    for i in range(12):
        log_event(logger, logging.INFO, "op_a", "tick", "%d", i)
    lines = buffer.drain("op_a")
    assert lines[0]["event"] == "lines_dropped"
    assert "7 log lines were dropped" in lines[0]["message"]
    assert [line["message"] for line in lines[1:]] == [f"tick: {i}" for i in range(7, 12)]
    # A third operation pushes out the oldest one.
    log_event(logger, logging.INFO, "op_b", "tick")
    log_event(logger, logging.INFO, "op_c", "tick")
    assert buffer.operations() == ["op_b", "op_c"]


# --- stored with the pull, served by cursor ----------------------------------------------------


def test_a_local_runs_lines_reach_the_api_by_cursor(api):
    work = TalkingWork()
    op = launch(work)
    assert work.started.wait(10)

    def logs(**query: Any) -> dict[str, Any]:
        response = api.get(f"/api/v1/operations/{op.operation_id}/logs/", query)
        assert response.status_code == 200, response.content
        return response.json()

    assert wait_until(lambda: len(logs()["logs"]) >= 5)
    first = logs()
    messages = [line["message"] for line in first["logs"]]
    assert messages[0] == "created: test, local"
    assert "started: running on this host" in messages
    assert [m for m in messages if "batch" in m] == [f"first batch line {i}" for i in range(3)]
    assert {line["source"] for line in first["logs"]} == {""}
    assert [line["seq"] for line in first["logs"]] == list(range(len(first["logs"])))
    cursor = first["new_cursor"]
    assert logs(cursor=cursor) == {"logs": [], "new_cursor": cursor, "first_seq": 0}

    work.more.set()
    assert wait_until(lambda: len(logs(cursor=cursor)["logs"]) == 2)
    page = logs(cursor=cursor, limit=1)
    assert [line["message"] for line in page["logs"]] == ["second batch line 0"]
    assert page["new_cursor"] == cursor + 1
    work.release.set()
    assert local_runs.wait_idle(10)
    tail = logs(cursor=cursor + 1)["logs"]
    assert tail[0]["message"] == "second batch line 1"
    assert tail[-1]["event"] == "completed"


@pytest.mark.parametrize(
    "query",
    [{"cursor": -1}, {"cursor": "abc"}, {"cursor": 2**31}, {"limit": 0}, {"limit": 1001}],
)
def test_the_logs_api_refuses_bad_paging(api, query):
    op = services.operation_create(operation_type="test", executor=Executor.LOCAL)
    response = api.get(f"/api/v1/operations/{op.operation_id}/logs/", query)
    assert response.status_code == 400
    field = next(iter(query))
    assert field in response.json()["error"]["details"]


def test_the_logs_api_answers_404_for_an_unknown_operation(api):
    response = api.get("/api/v1/operations/op_test_20260101_000000_00000000/logs/")
    assert response.status_code == 404


def test_the_table_keeps_the_newest_lines_only(api, settings):
    settings.KTRDR = {**settings.KTRDR, "OPERATION_LOG_MAX_LINES": 10}
    op = services.operation_create(operation_type="test", executor=Executor.LOCAL)
    # Ended first (pending → cancelled at once: 2 more lines), so reading it refreshes nothing.
    services.operation_request_cancel(operation_id=op.operation_id)
    for i in range(30):
        log_event(logging.getLogger("operations.test"), logging.INFO, op.operation_id, "n", "%d", i)
    services.operation_store_log_lines(operation_id=op.operation_id)
    assert OperationLog.objects.filter(operation=op).count() == 10
    body = api.get(f"/api/v1/operations/{op.operation_id}/logs/").json()
    # Seq 0..2 say created and cancelled, 3..32 are n 0..29: the newest ten are seq 23..32.
    assert body["first_seq"] == 23
    assert [line["message"] for line in body["logs"]] == [f"n: {i}" for i in range(20, 30)]


def test_key_events_say_themselves_once_in_one_format():
    op = services.operation_create(operation_type="test", executor=Executor.AGENT, agent="a1")
    services.operation_mark_unreachable(operation_id=op.operation_id, error="timed out")
    services.operation_mark_unreachable(operation_id=op.operation_id, error="timed out again")
    services.operation_record_pull(
        operation_id=op.operation_id, pull=services.Pull(snapshot={"percentage": 5.0})
    )
    services.operation_request_cancel(operation_id=op.operation_id, reason="enough")
    services.operation_acknowledge_cancel(operation_id=op.operation_id, stop_point="step 2")
    messages = _messages(op.operation_id)
    assert messages[0] == "created: test, agent"
    assert messages[1] == "unreachable: timed out"  # once per outage
    assert messages[2].startswith("reachable: answers again after ")
    assert messages[3:] == ["cancel_requested: enough", "cancel_acknowledged: stopped at step 2"]


# --- the page ----------------------------------------------------------------------------------


def _live(client, op_id: str, cursor: int, log_cursor: int, etag: str | None = None):
    headers = {"HX-Request": "true", "HX-Target": "operation-live"}
    if etag:
        headers["If-None-Match"] = etag
    return client.get(
        f"/operations/{op_id}/?cursor={cursor}&log_cursor={log_cursor}", headers=headers
    )


def test_the_page_shows_its_lines_and_a_poll_appends_only_the_new_ones(logged_in, user):
    work = TalkingWork()
    op = launch(work, user=user)
    assert work.started.wait(10)
    assert wait_until(lambda: "first batch line 2" in "".join(_messages(op.operation_id)))
    page = logged_in.get(f"/operations/{op.operation_id}/").content.decode()
    assert 'id="log-lines"' in page
    assert "first batch line 0" in page
    assert "first batch line 2" in page
    log_cursor = len(_messages(op.operation_id))
    assert f"log_cursor={log_cursor}" in page

    caught_up = _live(logged_in, op.operation_id, 0, log_cursor)
    assert "beforeend:#log-lines" not in caught_up.content.decode()
    again = _live(logged_in, op.operation_id, 0, log_cursor, etag=caught_up["ETag"])
    assert again.status_code == 304

    work.more.set()
    assert wait_until(
        lambda: (
            "second batch line 1"
            in _live(logged_in, op.operation_id, 0, log_cursor).content.decode()
        )
    )
    poll = _live(logged_in, op.operation_id, 0, log_cursor).content.decode()
    appended = poll.split('hx-swap-oob="beforeend:#log-lines">', 1)[1].split("</tbody>", 1)[0]
    # Only the lines past the page's cursor, never the ones it already shows.
    assert "second batch line 0" in appended
    assert "second batch line 1" in appended
    assert "first batch line" not in appended
    assert f"log_cursor={log_cursor + 2}" in poll
    work.release.set()
    assert local_runs.wait_idle(10)


def test_the_page_shows_the_newest_lines_and_links_to_older_ones(logged_in, user, monkeypatch):
    from operations import views

    monkeypatch.setattr(views, "LOG_KEEP", 3)
    monkeypatch.setattr(views, "LOG_PAGE_LINES", 4)
    op = services.operation_create(operation_type="test", executor=Executor.LOCAL, created_by=user)
    for i in range(10):
        log_event(logging.getLogger("operations.test"), logging.INFO, op.operation_id, "n", "%d", i)
    services.operation_mark_interrupted(operation_id=op.operation_id, reason="test")
    page = logged_in.get(f"/operations/{op.operation_id}/").content.decode()
    rows = page.split('id="log-lines"', 1)[1].split("</tbody>", 1)[0]
    assert rows.count("<tr") == 3  # the created line, n 0..9, interrupted: the last three
    assert "n: 9" in rows
    assert "interrupted" in rows
    assert "n: 7" not in rows
    # Seq 0 is the created line, 1..10 are n 0..9, 11 the end: the page shows 9..11.
    older_url = f"/operations/{op.operation_id}/logs/?before=9"
    assert older_url in page
    older = logged_in.get(older_url).content.decode()
    assert older.count("<tr class=") == 4  # seq 5..8
    assert "n: 4" in older
    assert "n: 7" in older
    assert "n: 3" not in older
    assert "n: 8" not in older
    assert "?before=5" in older  # and so on back


# --- ops logs --------------------------------------------------------------------------------


def test_ops_logs_prints_the_lines_and_follow_ends_with_the_operation():
    op = countdown_start(steps=5, step_seconds=0.05)
    out = _call("ops", "logs", op.operation_id, "--follow", "--interval", "0.05")
    assert "[here] created: countdown, local" in out
    assert "counting down 5 steps of 0.05 s" in out  # the worker's own logging
    assert "completed: in " in out
    assert out.rstrip().endswith(f"{op.operation_id} completed")
    # Without --follow: the last N lines, then it returns.
    last_two = _call("ops", "logs", op.operation_id, "--lines", "2").splitlines()
    assert len(last_two) == 2
    assert "completed: in " in last_two[-1]


def test_follow_logs_waits_with_the_injected_sleep_and_stops_at_the_end():
    from operations.follow import follow_logs

    work = TalkingWork(first=1, second=1)
    op = launch(work)
    assert work.started.wait(10)
    written: list[str] = []
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        # Each wait of the follower moves the work on: the first lets it log more, the next
        # let it end; the follower must stop by itself once it reads the end.
        sleeps.append(seconds)
        (work.more if len(sleeps) == 1 else work.release).set()
        time.sleep(0.01)

    end = follow_logs(operation_id=op.operation_id, write=written.append, follow=True, sleep=sleep)
    assert end.status == "completed"
    assert sleeps
    assert all(s == 0.5 for s in sleeps)
    text = "\n".join(written)
    assert "first batch line 0" in text
    assert "second batch line 0" in text
    assert "completed: in " in written[-1]


def test_ops_logs_refuses_bad_arguments():
    with pytest.raises(CommandError, match="does not exist"):
        _call("ops", "logs", "op_missing")
    with pytest.raises(CommandError, match="between 0 and 5000"):
        _call("ops", "logs", "op_missing", "--lines", "-1")
