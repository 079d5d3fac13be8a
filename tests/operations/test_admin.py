"""Admin: filters, search, metrics inline, the cancel action and the countdown start."""

from __future__ import annotations

import pytest

from operations import services
from operations.local import local_runs
from operations.models import Executor, Operation

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin_client_logged(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "", "pw-for-admin-1")
    client.force_login(admin)
    return client


def test_changelist_filters_and_search(admin_client_logged):
    op = services.operation_create(
        operation_type="countdown", executor=Executor.AGENT, metadata={"symbol": "EURUSD"}
    )
    resp = admin_client_logged.get("/admin/operations/operation/?status__exact=pending")
    assert resp.status_code == 200
    assert op.operation_id in resp.content.decode()
    found = admin_client_logged.get("/admin/operations/operation/?q=EURUSD")
    assert op.operation_id in found.content.decode()


def test_change_page_shows_progress_read_only_and_metrics_inline(admin_client_logged):
    resp = admin_client_logged.post(
        "/admin/operations/operation/start-countdown/", {"steps": 3, "step_seconds": 0}
    )
    assert resp.status_code == 302
    assert local_runs.wait_idle(10)
    op = Operation.objects.get()
    page = admin_client_logged.get(f"/admin/operations/operation/{op.pk}/change/").content.decode()
    assert "percentage" in page
    assert 'name="progress"' not in page  # not editable
    assert "Operation metrics" in page


def test_cancel_action_goes_through_the_service(admin_client_logged):
    pending = services.operation_create(operation_type="test", executor=Executor.LOCAL)
    done = services.operation_create(operation_type="test", executor=Executor.LOCAL)
    services.operation_request_cancel(operation_id=done.operation_id)
    resp = admin_client_logged.post(
        "/admin/operations/operation/",
        {"action": "cancel_operations", "_selected_action": [pending.pk, done.pk]},
        follow=True,
    )
    assert resp.status_code == 200
    pending.refresh_from_db()
    assert pending.status == "cancelled"
    assert "Cancel requested for 1 operation(s)" in resp.content.decode()
    assert "cannot become cancelled" in resp.content.decode()


@pytest.fixture
def view_only_staff(client, django_user_model):
    from django.contrib.auth.models import Permission

    staff = django_user_model.objects.create_user("viewer", password="pw-viewer-123", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_operation"))
    client.force_login(staff)
    return client


def test_a_view_only_staff_user_is_refused_the_cancel_action(view_only_staff):
    op = services.operation_create(operation_type="test", executor=Executor.AGENT)

    listing = view_only_staff.get("/admin/operations/operation/")
    assert listing.status_code == 200
    assert op.operation_id in listing.content.decode()
    assert "cancel_operations" not in listing.content.decode()  # not offered
    resp = view_only_staff.post(
        "/admin/operations/operation/",
        {"action": "cancel_operations", "_selected_action": [op.pk]},
        follow=True,
    )

    assert resp.status_code == 200
    op.refresh_from_db()
    assert op.status == "pending"
    assert op.cancel_requested_at is None


def test_the_admin_shows_live_progress_of_a_local_run_through_the_read_path(
    admin_client_logged, fast_ttl
):
    from operations import selectors
    from tests.fakes.workers import GatedWork, launch, wait_until

    work = GatedWork()
    op = launch(work)
    assert work.started.wait(10)
    # At most one TTL later the list shows what the worker reported (the row alone may not).
    assert wait_until(
        lambda: "10.0%" in admin_client_logged.get("/admin/operations/operation/").content.decode()
    )
    change = admin_client_logged.get(f"/admin/operations/operation/{op.pk}/change/")

    assert "waiting at the gate" in change.content.decode()
    assert "snapshot age" in change.content.decode().lower()
    assert selectors.operation_get(operation_id=op.operation_id).percentage == 10.0
    work.release.set()
    assert wait_until(lambda: Operation.objects.get(pk=op.pk).status == "completed")
