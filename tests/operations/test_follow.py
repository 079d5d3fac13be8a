"""The terminal follower: a bar over the selectors; Ctrl+C asks whether to cancel."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import pytest

from operations.follow import describe_progress, follow_operation
from operations.local import local_runs
from tests.fakes.workers import GatedWork, launch
from tests.processes import ROOT, process_env

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


def _terminal_lines(output: str) -> list[str]:
    """What a terminal ends up showing, line by line: each `\\r` redraws the current line."""
    return output.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def test_follow_prints_log_lines_above_the_bar_and_one_percentage():
    """The command as a user runs it: stdout and stderr in one terminal, the work logging beside
    the bar (the countdown logs `started`/`completed` while the bar is drawn)."""
    done = subprocess.run(
        [
            sys.executable,
            "manage.py",
            *["ops", "countdown", "--steps", "4", "--step-seconds", "0.1", "--follow"],
        ],
        cwd=ROOT,
        env=process_env(KTRDR_LOG_LEVEL="INFO", COLUMNS="100"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one terminal: where a log record and the bar could collide
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout
    lines = [line for line in _terminal_lines(done.stdout) if line.strip()]
    logs = [line for line in lines if " INFO " in line]
    assert any(re.search(r" op_countdown_\S+ completed\b", line) for line in logs), logs
    # Every log record is a line of its own, starting with its timestamp: never after a bar.
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO ", line) for line in logs), logs
    bars = [line for line in lines if "|" in line and " INFO " not in line]
    assert bars, lines
    for line in bars:
        assert line.count("%") == 1, line  # one percentage
        assert ", " not in line, line  # no postfix separator before the status
    # The last bar tells how it ended, not the last phase the work reported.
    assert re.match(r"100\.0%\|[█ ]+\| \[\d\d:\d\d\] Completed in [\d.]+ s", bars[-1]), bars[-1]
    assert "counting" not in bars[-1]
