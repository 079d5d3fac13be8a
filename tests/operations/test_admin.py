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
    pending = services.operation_create(operation_type="test", executor=Executor.AGENT)
    done = services.operation_create(operation_type="test", executor=Executor.AGENT)
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
