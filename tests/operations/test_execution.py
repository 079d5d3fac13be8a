"""The one start path, the one cancel path and the owner refresh (docs/architecture.md §5, §6)."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from operations import selectors, services
from operations.execution import OwnerRefresh, operation_cancel, operation_submit
from operations.instance import _start_time
from operations.local import local_runs
from operations.models import Executor, Operation
from operations.places import GONE, OTHER_PROCESS, THIS_PROCESS, place_for
from tests.fakes.workers import GatedWork, launch, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def other_live_process_id() -> str:
    """An owner id for a process that is alive on this host and is not this one (our parent)."""
    parent = os.getppid()
    return f"{socket.gethostname()}:{parent}:{_start_time(parent)}:cafe0001"


def test_a_cancel_left_on_the_row_reaches_the_worker_at_its_owners_refresh(fast_ttl):
    work = GatedWork()
    op = launch(work)
    assert work.started.wait(10)
    # What another process does: it records the request; it cannot reach this token.
    services.operation_request_cancel(operation_id=op.operation_id, reason="from elsewhere")

    # One owner refresh after the TTL (driven here; the owner's thread does this every TTL).
    assert wait_until(lambda: OwnerRefresh().tick() >= 0 and work_token_cancelled(op.operation_id))
    assert wait_until(lambda: Operation.objects.get(pk=op.pk).status == "cancelled")

    final = Operation.objects.get(pk=op.pk)
    assert final.cancel_reason == "from elsewhere"
    assert final.cancel_acknowledged_at is not None
    assert final.result_summary["stopped_at"] == "at the gate"


def work_token_cancelled(operation_id: str) -> bool:
    run = local_runs.get(operation_id)
    return run is None or run.token.is_cancelled


def test_the_owner_refresh_keeps_a_run_fresh_without_any_reader(fast_ttl):
    work = GatedWork()
    op = launch(work)
    assert work.started.wait(10)
    # Nobody reads through the read path here: the owner's own thread stores the progress.
    assert wait_until(lambda: Operation.objects.get(pk=op.pk).percentage == 10.0)
    assert Operation.objects.get(pk=op.pk).refreshed_at is not None
    work.release.set()
    assert wait_until(lambda: Operation.objects.get(pk=op.pk).status == "completed")


def test_places_are_told_apart_by_the_owner():
    work = GatedWork()
    mine = launch(work)
    assert work.started.wait(10)
    elsewhere = services.operation_create(operation_type="test", executor=Executor.LOCAL)
    Operation.objects.filter(pk=elsewhere.pk).update(owner=other_live_process_id())
    gone = services.operation_create(operation_type="test", executor=Executor.LOCAL)
    Operation.objects.filter(pk=gone.pk).update(owner="nohost:1:1:dead")

    assert place_for(Operation.objects.get(pk=mine.pk)) is THIS_PROCESS
    assert place_for(Operation.objects.get(pk=elsewhere.pk)) is OTHER_PROCESS
    assert place_for(Operation.objects.get(pk=gone.pk)) is GONE
    work.release.set()


def test_work_of_another_process_is_served_with_its_age_and_turns_stale(api):
    op = services.operation_create(operation_type="test", executor=Executor.LOCAL)
    services.operation_start(operation_id=op.operation_id)
    Operation.objects.filter(pk=op.pk).update(
        owner=other_live_process_id(),
        refreshed_at=timezone.now() - timedelta(seconds=2),
        progress={"percentage": 40.0},
    )
    fresh = api.get(f"/api/v1/operations/{op.operation_id}/").json()
    assert fresh["status"] == "running"
    assert fresh["progress"]["percentage"] == 40.0
    assert fresh["freshness"]["age_seconds"] >= 2.0
    assert fresh["freshness"]["stale"] is False

    Operation.objects.filter(pk=op.pk).update(refreshed_at=timezone.now() - timedelta(seconds=60))
    old = api.get(f"/api/v1/operations/{op.operation_id}/").json()
    assert old["status"] == "running"  # its owner is alive: not taken for interrupted
    assert old["freshness"]["age_seconds"] >= 60.0
    assert old["freshness"]["stale"] is True


def test_rows_of_another_process_are_cached_only_as_long_as_their_snapshot_is_young(fast_ttl):
    op = services.operation_create(operation_type="test", executor=Executor.LOCAL)
    services.operation_start(operation_id=op.operation_id)
    Operation.objects.filter(pk=op.pk).update(
        owner=other_live_process_id(), refreshed_at=timezone.now() - timedelta(seconds=30)
    )
    selectors.operation_get(operation_id=op.operation_id)
    # The owner stores a new snapshot: the next read sees it at once (no fresh-stamped copy of
    # the old row was cached).
    Operation.objects.filter(pk=op.pk).update(
        refreshed_at=timezone.now(), progress={"percentage": 55.0}
    )
    assert selectors.operation_get(operation_id=op.operation_id).percentage == 55.0


def test_a_pending_remote_operation_is_cancelling_until_its_place_says_it_ended():
    op = services.operation_create(operation_type="test", executor=Executor.AGENT, agent="x")
    asked = operation_cancel(operation_id=op.operation_id, reason="changed my mind")
    # The start may already be at the agent: only the agent's answer can end it.
    assert asked.status == "cancelling"
    again = operation_cancel(operation_id=op.operation_id, reason="twice")
    assert again.status == "cancelling"


def test_a_pending_local_operation_is_cancelled_at_once():
    op = services.operation_create(operation_type="test", executor=Executor.LOCAL)
    asked = operation_cancel(operation_id=op.operation_id)
    assert asked.status == "cancelled"
    assert asked.result_summary == {"stopped_at": "before start"}


def test_detached_work_that_would_run_in_this_process_is_refused_and_not_started():
    with pytest.raises(Exception, match="would run inside this command") as caught:
        operation_submit(operation_type="countdown", metadata={"steps": 3}, detach=True)
    assert caught.value.details == {"no_follow": [caught.value.message]}
    assert not Operation.objects.exists()


def test_load_data_no_follow_is_refused_for_a_load_it_would_run_itself(tmp_path, settings):
    settings.KTRDR = {**settings.KTRDR, "DATA_DIR": tmp_path / "data"}
    with pytest.raises(CommandError, match="would run inside this command"):
        call_command(
            "load_data", "EURUSD", "1h", "--start", "2024-01-01", "--end", "2024-01-05",
            "--no-follow",
        )  # fmt: skip
    assert not Operation.objects.exists()


def test_users_cancel_their_own_operations_and_staff_cancel_any(api, user, staff_api, client):
    from django.contrib.auth import get_user_model

    other = get_user_model().objects.create_user("bob", password="pw-bob-12345")
    mine = services.operation_create(
        operation_type="test", executor=Executor.AGENT, created_by=user
    )
    theirs = services.operation_create(
        operation_type="test", executor=Executor.AGENT, created_by=other
    )
    nobodys = services.operation_create(operation_type="test", executor=Executor.AGENT)

    refused = api.post(f"/api/v1/operations/{theirs.operation_id}/cancel/", {}, format="json")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    assert api.post(f"/api/v1/operations/{nobodys.operation_id}/cancel/").status_code == 403
    assert Operation.objects.get(pk=theirs.pk).cancel_requested_at is None
    assert api.post(f"/api/v1/operations/{mine.operation_id}/cancel/").status_code == 202
    assert staff_api.post(f"/api/v1/operations/{theirs.operation_id}/cancel/").status_code == 202

    client.force_login(user)
    page = client.get(f"/operations/{nobodys.operation_id}/").content.decode()
    assert "operations/" + nobodys.operation_id + "/cancel/" not in page  # not offered
    posted = client.post(f"/operations/{nobodys.operation_id}/cancel/", follow=True)
    assert "may not cancel" in posted.content.decode()
    assert Operation.objects.get(pk=nobodys.pk).cancel_requested_at is None
