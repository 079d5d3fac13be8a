"""The status machine and the local execution lifecycle."""

from __future__ import annotations

import pytest

from operations import selectors, services
from operations.countdown import countdown_start
from operations.exceptions import IllegalTransition, InvalidInput
from operations.local import local_runs
from operations.models import Executor
from tests.fakes.workers import GatedWork, launch, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _agent_op():
    # An operation whose work is elsewhere: only the services move it.
    return services.operation_create(operation_type="test", executor=Executor.AGENT, agent="x")


def test_status_machine_allows_the_documented_path():
    op = _agent_op()
    assert op.status == "pending"
    assert services.operation_start(operation_id=op.operation_id).status == "running"
    done = services.operation_complete(operation_id=op.operation_id, result_summary={"ok": 1})
    assert done.status == "completed"
    assert done.completed_at is not None
    assert done.progress["percentage"] == 100.0


@pytest.mark.parametrize("end", ["complete", "fail", "cancel"])
def test_terminal_states_are_final(end):
    op = _agent_op()
    services.operation_start(operation_id=op.operation_id)
    if end == "complete":
        services.operation_complete(operation_id=op.operation_id, result_summary={})
    elif end == "fail":
        services.operation_fail(operation_id=op.operation_id, error_message="boom")
    else:
        services.operation_request_cancel(operation_id=op.operation_id)
        services.operation_acknowledge_cancel(operation_id=op.operation_id, stop_point="x")
    with pytest.raises(IllegalTransition):
        services.operation_start(operation_id=op.operation_id)
    with pytest.raises(IllegalTransition):
        services.operation_complete(operation_id=op.operation_id, result_summary={})
    with pytest.raises(IllegalTransition):
        services.operation_fail(operation_id=op.operation_id, error_message="again")
    with pytest.raises(IllegalTransition):
        services.operation_request_cancel(operation_id=op.operation_id)


def test_cancel_of_a_pending_local_operation_ends_it_at_once():
    # Nothing has the work yet (a remote one stays cancelling: see test_execution).
    op = services.operation_create(operation_type="test", executor=Executor.LOCAL)
    got = services.operation_request_cancel(operation_id=op.operation_id, reason="not needed")
    assert got.status == "cancelled"
    assert got.cancel_reason == "not needed"
    assert got.cancel_acknowledged_at is not None


def test_cancel_is_repeatable_while_cancelling():
    op = _agent_op()
    services.operation_start(operation_id=op.operation_id)
    first = services.operation_request_cancel(operation_id=op.operation_id, reason="one")
    second = services.operation_request_cancel(operation_id=op.operation_id, reason="two")
    assert first.status == second.status == "cancelling"
    assert second.cancel_reason == "one"


def test_work_that_ends_before_seeing_the_cancel_completes():
    op = _agent_op()
    services.operation_start(operation_id=op.operation_id)
    services.operation_request_cancel(operation_id=op.operation_id)
    done = services.operation_complete(operation_id=op.operation_id, result_summary={"n": 1})
    assert done.status == "completed"
    assert done.result_summary["cancel_not_needed"] is True


def test_local_cancel_is_acknowledged_at_the_next_stop_point_keeping_partial_results():
    work = GatedWork()
    op = launch(work)
    assert work.started.wait(10)
    assert wait_until(
        lambda: (
            selectors.operation_get(operation_id=op.operation_id, force_refresh=True).status
            == "running"
        )
    )
    services.operation_request_cancel(operation_id=op.operation_id, reason="user asked")
    assert local_runs.wait_idle(10)
    got = selectors.operation_get(operation_id=op.operation_id, force_refresh=True)
    assert got.status == "cancelled"
    assert got.cancel_requested_at <= got.cancel_acknowledged_at
    assert got.result_summary == {"kept": "partial", "stopped_at": "at the gate"}
    assert got.progress["message"] == "waiting at the gate"


def test_worker_exception_fails_the_operation_with_a_useful_message(caplog):
    op = countdown_start(steps=5, step_seconds=0, fail_at=3)
    assert local_runs.wait_idle(10)
    got = selectors.operation_get(operation_id=op.operation_id)
    assert got.status == "failed"
    assert got.error_message == "CountdownFailure: simulated failure at step 3 of 5"
    assert got.metrics_cursor == 2  # the steps before the failure are kept
    assert "Traceback" in caplog.text


def test_countdown_records_one_metric_per_step_and_completes():
    op = countdown_start(steps=6, step_seconds=0)
    assert local_runs.wait_idle(10)
    got = selectors.operation_get(operation_id=op.operation_id)
    assert got.status == "completed"
    assert got.result_summary["steps"] == 6
    records = selectors.operation_metrics(operation_id=op.operation_id).records
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert [r["seq"] for r in records] == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": "many"}, "steps"),
        ({"step_seconds": -1}, "step_seconds"),
        ({"steps": 3, "fail_at": 9}, "fail_at"),
    ],
)
def test_countdown_parameters_are_validated_naming_the_field(params, field):
    with pytest.raises(InvalidInput) as info:
        countdown_start(**params)
    assert info.value.field == field


def test_local_execution_switched_off_refuses_local_work(settings):
    from operations.exceptions import ServiceUnavailable

    settings.KTRDR = {**settings.KTRDR, "LOCAL_EXECUTION": False}
    with pytest.raises(ServiceUnavailable):
        countdown_start(steps=1, step_seconds=0)
