"""What a viewer reads: the records it lacks, from the cached snapshot or the database alike."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from operations import selectors, services
from operations.models import Executor, Operation

pytestmark = pytest.mark.django_db(transaction=True)


def _pull(op: Operation, count: int, start: int) -> Operation:
    records = [
        (start + i, {"kind": "step", "step": start + i, "recorded_at": "2026-12-01T10:00:00+00:00"})
        for i in range(count)
    ]
    pull = services.Pull(snapshot={"percentage": 1.0}, records=records, source_cursor=start + count)
    return services.operation_record_pull(operation_id=op.operation_id, pull=pull)


def test_new_records_come_from_the_pulled_snapshot_equal_to_the_database():
    op = services.operation_create(operation_type="test", executor=Executor.AGENT)
    services.operation_start(operation_id=op.operation_id)
    _pull(op, 5, 0)
    pulled = _pull(op, 4, 5)  # the snapshot a read path would cache, with the 4 it stored
    stored = Operation.objects.get(pk=op.pk)  # the same row, without them
    for cursor in (5, 6, 9):
        with CaptureQueriesContext(connection) as queries:
            fast = selectors.operation_new_metrics(operation=pulled, cursor=cursor, limit=500)
        assert len(queries) == 0
        slow = selectors.operation_new_metrics(operation=stored, cursor=cursor, limit=500)
        assert fast == slow
    # Further behind than the last pull: the database answers, bounded by the limit.
    behind = selectors.operation_new_metrics(operation=pulled, cursor=2, limit=3)
    assert [r["seq"] for r in behind.records] == [2, 3, 4]
    assert behind.new_cursor == 5
    # Never past the snapshot's own cursor, whatever the viewer claims.
    ahead = selectors.operation_new_metrics(operation=pulled, cursor=50, limit=500)
    assert ahead.records == []
    assert ahead.new_cursor == 9


def test_recent_history_is_the_last_records_before_the_cursor():
    op = services.operation_create(operation_type="test", executor=Executor.AGENT)
    services.operation_start(operation_id=op.operation_id)
    _pull(op, 30, 0)
    last = selectors.operation_recent_metrics(operation=op, before=20, last=5)
    assert [r["seq"] for r in last] == [15, 16, 17, 18, 19]
    assert last == selectors.operation_all_metrics(operation=op)[15:20]
