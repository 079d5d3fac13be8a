"""Cancel and follow reach work run by another process (docs/architecture.md §5, §6).

This test process plays the web server: work it starts runs in its worker threads. The other
processes are real `manage.py` subprocesses on the same database. Between the request and the
outcome nobody reads the operation through the read path — the tests only look at the row — so
what ends the work is the owner's own refresh.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

import pytest

from operations.countdown import countdown_start
from operations.execution import operation_cancel
from operations.models import Operation
from tests.processes import manage

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WAIT = 120.0  # generous: the suite must pass on a loaded machine


def row_when(operation_id: str, predicate: Callable[[Operation], bool]) -> Operation:
    """The stored row once `predicate` holds (a plain database read, not the read path)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        row = Operation.objects.filter(operation_id=operation_id).first()
        if row is not None and predicate(row):
            return row
        time.sleep(0.05)
    raise AssertionError(f"{operation_id}: condition not met; row is {row and row.status}")


class Output:
    """Collects a subprocess's stdout as it comes (tqdm redraws a line with carriage returns)."""

    def __init__(self, stream) -> None:
        self.text = ""
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for chunk in iter(lambda: stream.read(1), ""):
            self.text += chunk

    def join(self) -> str:
        self._thread.join(timeout=WAIT)
        return self.text


def percentages(text: str) -> list[float]:
    return [float(p) for p in re.findall(r"(\d+\.\d)%", text)]


def test_ops_cancel_in_another_process_stops_a_countdown_this_process_runs():
    op = countdown_start(steps=5000, step_seconds=0.05)
    row_when(op.operation_id, lambda r: r.status == "running")

    command = manage("ops", "cancel", op.operation_id, "--reason", "asked in a terminal")
    out, err = command.communicate(timeout=WAIT)

    assert command.returncode == 0, err
    assert f"{op.operation_id}: cancelling" in out
    row = row_when(op.operation_id, lambda r: r.is_terminal)
    assert row.status == "cancelled"
    assert row.cancel_reason == "asked in a terminal"
    assert row.cancel_acknowledged_at is not None
    assert row.cancel_acknowledged_at >= row.cancel_requested_at
    assert row.result_summary["stopped_at"].startswith("step ")
    assert "cancel_not_needed" not in row.result_summary


def test_a_cancel_through_the_api_stops_a_countdown_an_ops_command_runs(staff_api):
    command = manage("ops", "countdown", "--steps", "5000", "--step-seconds", "0.05")
    try:
        started = command.stdout.readline()
        match = re.search(r"started (op_\S+)", started)
        assert match, started + command.stderr.read()
        operation_id = match.group(1)
        row_when(operation_id, lambda r: r.status == "running")

        response = staff_api.post(
            f"/api/v1/operations/{operation_id}/cancel/", {"reason": "from the API"}, format="json"
        )
        assert response.status_code == 202
        assert response.json()["status"] == "cancelling"

        out, err = command.communicate(timeout=WAIT)
    finally:
        if command.poll() is None:
            command.kill()
    assert command.returncode == 0, err
    assert f"{operation_id} cancelled" in out
    row = Operation.objects.get(operation_id=operation_id)
    assert row.status == "cancelled"
    assert row.cancel_reason == "from the API"
    assert row.cancel_acknowledged_at >= row.cancel_requested_at


def test_ops_follow_in_another_process_shows_the_progress_of_work_run_here():
    op = countdown_start(steps=5000, step_seconds=0.02)
    row_when(op.operation_id, lambda r: r.status == "running")
    command = manage("ops", "follow", op.operation_id, "--interval", "0.1")
    output = Output(command.stdout)
    try:
        deadline = time.monotonic() + WAIT
        while len({p for p in percentages(output.text) if 0 < p < 100}) < 3:
            assert command.poll() is None, output.text + command.stderr.read()
            assert time.monotonic() < deadline, output.text
            time.sleep(0.1)
        # Seen rising: end it (the follower then prints the end and exits).
        countdown_op = Operation.objects.get(operation_id=op.operation_id)
        assert countdown_op.status == "running"
        operation_cancel(operation_id=op.operation_id, reason="seen enough")
        command.wait(timeout=WAIT)
    finally:
        if command.poll() is None:
            command.kill()
    text = output.join()
    seen = percentages(text)
    assert seen == sorted(seen), seen
    assert len({p for p in seen if 0 < p < 100}) >= 3, text
    assert f"{op.operation_id} cancelled" in text
