"""The terminal follower: a bar over the selectors; Ctrl+C asks whether to cancel."""

from __future__ import annotations

import io

import pytest

from operations.follow import describe_progress, follow_operation
from operations.local import local_runs
from tests.fakes.workers import GatedWork, launch

pytestmark = pytest.mark.django_db(transaction=True)


def _interrupt_once():
    state = {"raised": False}

    def describe(op):
        if not state["raised"] and op.status == "running":
            state["raised"] = True
            raise KeyboardInterrupt
        return describe_progress(op)

    return describe


def test_ctrl_c_then_yes_cancels_and_follows_to_the_end():
    work = GatedWork()
    op = launch(work)
    assert work.started.wait(10)
    out = io.StringIO()
    final = follow_operation(
        operation_id=op.operation_id,
        stdout=out,
        stdin=io.StringIO("y\n"),
        interval=0.05,
        describe=_interrupt_once(),
        timeout=20,
    )
    assert final.status == "cancelled"
    assert final.cancel_reason == "cancelled from the terminal"
    assert f"Cancel {op.operation_id}? [y/N]" in out.getvalue()
    assert "Cancel requested" in out.getvalue()


def test_ctrl_c_then_no_keeps_the_work_running():
    work = GatedWork()
    op = launch(work)
    assert work.started.wait(10)
    out = io.StringIO()
    final = follow_operation(
        operation_id=op.operation_id,
        stdout=out,
        stdin=io.StringIO("n\n"),
        interval=0.05,
        describe=_interrupt_once(),
        timeout=0.5,
    )
    assert final.status == "running"
    assert "Still running" in out.getvalue()
    work.release.set()
    assert local_runs.wait_idle(10)
