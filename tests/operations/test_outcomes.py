"""Finished work is never lost (docs/architecture.md §5): a database that refuses the outcome.

The database is the outside edge here, and it really refuses: every connection opened during the
outage is made read-only (SQLite `query_only`, PostgreSQL `default_transaction_read_only`), as a
full disk or a failing server would refuse writes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections
from django.db.backends.signals import connection_created

from operations import selectors
from operations.local import WorkContext, local_runs
from operations.models import Operation
from operations.serializers import serialize_operation
from tests.fakes.workers import launch, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


class Outage:
    """While active, every new database connection refuses writes."""

    def __init__(self) -> None:
        self.active = False

    def __call__(self, sender: Any, connection: Any, **kwargs: Any) -> None:
        if not self.active:
            return
        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                cursor.execute("PRAGMA query_only = ON")
            else:
                cursor.execute("SET default_transaction_read_only = on")


@pytest.fixture
def outage() -> Iterator[Outage]:
    refuse = Outage()
    connection_created.connect(refuse)
    yield refuse
    connection_created.disconnect(refuse)


class FinishDuringOutage:
    """Records metrics, waits for the gate, then finishes on a connection opened in the outage."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()

    def __call__(self, ctx: WorkContext) -> dict[str, Any]:
        for i in range(120):
            ctx.bridge.append_metric("step", {"i": i})
        ctx.bridge.update(percentage=50.0, message="half way")
        self.started.set()
        while not self.release.wait(0.005):
            ctx.token.raise_if_cancelled("at the gate")
        connections.close_all()  # the outcome is then written on a fresh (refusing) connection
        return {"answer": 42}


def read_in_another_thread(operation_id: str) -> dict[str, Any]:
    """A reader whose connection is opened now (so during an outage, it refuses writes too)."""
    answer: dict[str, Any] = {}

    def read() -> None:
        try:
            op = selectors.operation_get(operation_id=operation_id, force_refresh=True)
            answer.update(serialize_operation(op))
        finally:
            connections.close_all()

    reader = threading.Thread(target=read)
    reader.start()
    reader.join(30)
    return answer


def test_an_outcome_the_database_refused_is_kept_and_saved_at_the_next_refresh(outage, fast_ttl):
    work = FinishDuringOutage()
    op = launch(work)
    assert work.started.wait(10)

    outage.active = True
    work.release.set()
    assert wait_until(lambda: (run := local_runs.get(op.operation_id)) and run.finished, 30)
    # A reader during the outage is told the snapshot is stale (at once, or once the owner's own
    # failing refresh has let go of the single-flight lock).
    answers: list[dict[str, Any]] = []
    assert wait_until(
        lambda: (
            answers.append(read_in_another_thread(op.operation_id))
            or answers[-1]["freshness"]["stale"]
        )
    )
    during = answers[-1]

    row = Operation.objects.get(pk=op.pk)  # this test's own connection still writes
    assert row.status == "running"  # not failed, not "interrupted": its process is alive
    assert local_runs.get(op.operation_id) is not None
    assert during["status"] == "running"
    assert during["freshness"]["stale"] is True

    outage.active = False
    done = read_in_another_thread(op.operation_id)

    assert done["status"] == "completed"
    assert done["result_summary"] == {"answer": 42}
    assert local_runs.get(op.operation_id) is None
    page = selectors.operation_metrics(operation_id=op.operation_id)
    assert [r["i"] for r in page.records] == list(range(120))  # every metric, once
