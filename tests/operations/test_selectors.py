"""The TTL-cached pull path: one bridge read per window, cursors exact, terminal rows frozen."""

from __future__ import annotations

import threading
import time

import pytest

from operations import cache as op_cache
from operations import selectors, services
from operations.bridge import ProgressBridge
from operations.instance import _set_instance_id_for_tests, current_instance_id
from operations.local import local_runs
from operations.models import Executor, OperationMetric
from tests.fakes.workers import GatedWork, launch, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _running(work: GatedWork, bridge: ProgressBridge, **kwargs):
    op = launch(work, bridge=bridge, **kwargs)
    assert work.started.wait(10)
    assert wait_until(
        lambda: (
            selectors.operation_get(operation_id=op.operation_id, force_refresh=True).status
            == "running"
        )
    )
    return op


def test_three_readers_in_one_ttl_window_cause_one_bridge_read(settings):
    settings.KTRDR = {**settings.KTRDR, "OPERATIONS_CACHE_TTL": 5.0}
    work, bridge = GatedWork(), ProgressBridge()
    op = _running(work, bridge)
    op_cache.invalidate(op.operation_id)
    # Let the DB-side freshness guard expire too, so the first reader really has to pull.
    from operations.models import Operation

    Operation.objects.filter(pk=op.pk).update(refreshed_at=None)
    before = bridge.bridge_reads
    results = [selectors.operation_get(operation_id=op.operation_id) for _ in range(3)]
    assert bridge.bridge_reads - before == 1
    assert all(r.progress["message"] == "waiting at the gate" for r in results)
    work.release.set()


def test_force_refresh_bypasses_the_cache(settings):
    settings.KTRDR = {**settings.KTRDR, "OPERATIONS_CACHE_TTL": 5.0}
    work, bridge = GatedWork(), ProgressBridge()
    op = _running(work, bridge)
    before = bridge.bridge_reads
    selectors.operation_get(operation_id=op.operation_id)
    selectors.operation_get(operation_id=op.operation_id, force_refresh=True)
    selectors.operation_get(operation_id=op.operation_id, force_refresh=True)
    assert bridge.bridge_reads - before == 2
    work.release.set()


def test_a_read_after_the_ttl_refreshes(fast_ttl):
    work, bridge = GatedWork(), ProgressBridge()
    op = _running(work, bridge)
    selectors.operation_get(operation_id=op.operation_id)
    before = bridge.bridge_reads
    bridge.update(message="moved on")
    assert selectors.operation_get(operation_id=op.operation_id).progress["message"] != "moved on"
    time.sleep(fast_ttl + 0.05)
    fresh = selectors.operation_get(operation_id=op.operation_id)
    assert fresh.progress["message"] == "moved on"
    assert bridge.bridge_reads - before == 1
    work.release.set()


def test_a_reader_that_finds_the_refresh_lock_taken_does_not_pull_again(settings):
    settings.KTRDR = {**settings.KTRDR, "OPERATIONS_CACHE_TTL": 0.0}
    work, bridge = GatedWork(), ProgressBridge()
    op = _running(work, bridge)
    token = op_cache.try_lock(op.operation_id)  # another process is refreshing right now
    assert token is not None
    before = bridge.bridge_reads
    got = selectors.operation_get(operation_id=op.operation_id, force_refresh=True)
    assert got.status == "running"
    assert bridge.bridge_reads == before
    op_cache.unlock(op.operation_id, token)
    selectors.operation_get(operation_id=op.operation_id, force_refresh=True)
    assert bridge.bridge_reads == before + 1
    work.release.set()


def test_metrics_cursor_never_duplicates_or_skips_under_concurrent_refreshes(fast_ttl):
    total = 400
    finished = threading.Event()

    def work(ctx):
        for i in range(total):
            ctx.bridge.append_metric("step", {"i": i})
            ctx.bridge.update(percentage=100.0 * (i + 1) / total)
            if i % 20 == 0:
                time.sleep(0.002)
        finished.set()
        return {"appended": total}

    op = launch(work)
    errors: list[BaseException] = []
    collected: list[list[int]] = [[] for _ in range(5)]

    def reader(slot: int) -> None:
        from django.db import connection

        cursor = 0
        try:
            while True:
                force = slot % 2 == 0
                current = selectors.operation_get(operation_id=op.operation_id, force_refresh=force)
                page = selectors.operation_metrics(
                    operation_id=op.operation_id, cursor=cursor, limit=37
                )
                collected[slot].extend(r["i"] for r in page.records)
                cursor = page.new_cursor
                if current.is_terminal and not page.records:
                    return
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert finished.is_set()
    stored = list(
        OperationMetric.objects.filter(operation__operation_id=op.operation_id)
        .order_by("seq")
        .values_list("seq", "payload")
    )
    assert [seq for seq, _ in stored] == list(range(total))
    assert [payload["i"] for _, payload in stored] == list(range(total))
    for seen in collected:
        assert seen == list(range(total))


def test_terminal_operations_are_never_refreshed():
    bridge = ProgressBridge()
    work = GatedWork(metrics_before_wait=3)
    op = launch(work, bridge=bridge)
    work.release.set()
    assert local_runs.wait_idle(10)
    reads = bridge.bridge_reads
    for _ in range(3):
        got = selectors.operation_get(operation_id=op.operation_id, force_refresh=True)
        assert got.status == "completed"
    assert bridge.bridge_reads == reads
    bridge.update(message="a late write nobody should see")
    got = selectors.operation_get(operation_id=op.operation_id, force_refresh=True)
    assert got.progress["message"] != "a late write nobody should see"


def test_completed_operations_stay_listed_with_all_their_metrics():
    work = GatedWork(metrics_before_wait=25)
    op = launch(work)
    work.release.set()
    assert local_runs.wait_idle(10)
    page = selectors.operation_list()
    assert [o.operation_id for o in page.operations] == [op.operation_id]
    assert page.operations[0].status == "completed"
    assert page.active_count == 0
    metrics = selectors.operation_metrics(operation_id=op.operation_id)
    assert [r["i"] for r in metrics.records] == list(range(25))
    assert metrics.new_cursor == 25


def test_final_drain_keeps_metrics_appended_after_the_last_read(settings):
    settings.KTRDR = {**settings.KTRDR, "OPERATIONS_CACHE_TTL": 60.0}
    work = GatedWork(metrics_before_wait=5)
    op = launch(work)
    assert work.started.wait(10)
    selectors.operation_get(operation_id=op.operation_id, force_refresh=True)
    work.release.set()
    assert local_runs.wait_idle(10)
    assert OperationMetric.objects.filter(operation__operation_id=op.operation_id).count() == 5


def test_a_running_local_operation_of_a_gone_process_is_marked_interrupted_on_read():
    op = services.operation_create(operation_type="test", executor=Executor.LOCAL)
    services.operation_start(operation_id=op.operation_id)
    old = current_instance_id()
    _set_instance_id_for_tests("restarted-host:4242:abcdef12")
    try:
        got = selectors.operation_get(operation_id=op.operation_id)
    finally:
        _set_instance_id_for_tests(old)
    assert got.status == "failed"
    assert got.error_message.startswith("interrupted:")
    assert old in got.error_message


def test_listing_ends_orphaned_local_operations_too():
    op = services.operation_create(operation_type="test", executor=Executor.LOCAL)
    services.operation_start(operation_id=op.operation_id)
    page = selectors.operation_list()
    assert page.operations[0].status == "failed"
    assert page.active_count == 0


def test_list_filters_and_pages_newest_first():
    ids = []
    for kind in ("a", "b", "a"):
        ids.append(
            services.operation_create(operation_type=kind, executor=Executor.AGENT).operation_id
        )
        time.sleep(0.002)
    page = selectors.operation_list(operation_type="a")
    assert [o.operation_id for o in page.operations] == [ids[2], ids[0]]
    assert page.total == 2
    page = selectors.operation_list(limit=1, offset=1)
    assert [o.operation_id for o in page.operations] == [ids[1]]
    assert page.total == 3
    assert page.active_count == 3


def test_a_running_operation_of_another_live_process_is_left_running(monkeypatch):
    import os
    import subprocess
    import sys

    from operations import instance
    from operations.models import Operation

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        start = instance._start_time(sleeper.pid)
        owner = f"{instance._HOST}:{sleeper.pid}:{start}:0badc0de"
        op = services.operation_create(operation_type="test", executor=Executor.LOCAL)
        services.operation_start(operation_id=op.operation_id)
        Operation.objects.filter(pk=op.pk).update(owner=owner)
        got = selectors.operation_get(operation_id=op.operation_id, force_refresh=True)
        assert got.status == "running"
        assert selectors.operation_list().operations[0].status == "running"
    finally:
        sleeper.kill()
        sleeper.wait()
    # Once that process is gone, the next read ends it.
    got = selectors.operation_get(operation_id=op.operation_id, force_refresh=True)
    assert got.status == "failed"
    assert "interrupted" in got.error_message
    assert os.getpid() != sleeper.pid
