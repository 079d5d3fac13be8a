"""Follow an operation in a terminal: a live progress bar fed by the same selectors as every reader.

Used by `ops follow` and by the long management commands (`load_data`, `train`). Ctrl+C does not
kill the work: it asks whether to cancel the operation, then keeps following until it ends.

The bar is one line: `83.3%|████▎   | [00:01] running · counting · step 5/6 · ETA 1s`. While it
shows, log records written to the console (the work runs in this process, and logs) go through
`tqdm.write`, which clears the bar, prints the record on its own line above it and redraws the bar.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO, Any

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from operations import execution, readable, selectors
from operations.exceptions import IllegalTransition
from operations.models import Operation
from operations.serializers import is_stale


def describe_freshness(op: Operation) -> str:
    """How old the shown snapshot is, and whether it can still be called live."""
    age = op.snapshot_age_seconds
    if op.is_terminal:
        return "final"
    if age is None:
        return "not pulled yet"
    where = f" (agent {op.agent} unreachable)" if op.unreachable_since else ""
    return f"{'stale' if is_stale(op) else 'live'}, {age:.1f} s old{where}"


def describe_progress(op: Operation) -> str:
    """One line for the bar: phase, message, ETA; how old the snapshot is when it is stale. A
    finished operation's line is its outcome, never the last phase it reported."""
    if op.is_terminal:
        return readable.operation_outcome(op)
    progress = op.progress or {}
    parts = [op.status]
    if progress.get("phase"):
        parts.append(str(progress["phase"]))
    if progress.get("message"):
        parts.append(str(progress["message"]))
    eta = progress.get("eta_seconds")
    if eta is not None and not op.is_terminal:
        parts.append(f"ETA {int(eta)}s")
    if is_stale(op):
        parts.append(describe_freshness(op))
    return " · ".join(parts)


def _ask_cancel(op: Operation, stdout: Any, stdin: IO[str] | None) -> None:
    stdout.write(f"\nCancel {op.operation_id}? [y/N] ")
    stdout.flush()
    try:
        answer = stdin.readline().strip().lower() if stdin is not None else ""
    except (KeyboardInterrupt, EOFError):
        answer = "y"
    if answer in {"y", "yes"}:
        try:
            execution.operation_cancel(
                operation_id=op.operation_id, reason="cancelled from the terminal"
            )
            stdout.write("Cancel requested; waiting for the work to stop…\n")
        except IllegalTransition as exc:
            stdout.write(f"{exc.message}\n")
    else:
        stdout.write("Still running; following again (Ctrl+C to ask again).\n")


def follow_operation(
    *,
    operation_id: str,
    stdout: Any,
    stdin: IO[str] | None = None,
    interval: float = 0.5,
    describe: Callable[[Operation], str] = describe_progress,
    timeout: float | None = None,
) -> Operation:
    """Show a bar until the operation ends (or `timeout` seconds pass); return the last read."""
    # Django's OutputWrapper appends a newline to every write; tqdm needs the raw stream.
    stdout = getattr(stdout, "_out", stdout)
    op = selectors.operation_get(operation_id=operation_id)
    deadline = None if timeout is None else time.monotonic() + timeout
    # One percentage (tqdm's own), then the description: `{desc}` is the text as set, where a
    # postfix would be printed after ", ".
    bar = tqdm(
        total=100.0,
        file=stdout,
        bar_format="{percentage:5.1f}%|{bar}| [{elapsed}] {desc}",
        dynamic_ncols=True,
        leave=True,
    )
    try:
        with logging_redirect_tqdm():
            while True:
                try:
                    op = selectors.operation_get(operation_id=operation_id)
                    bar.n = round(op.percentage, 1)
                    bar.set_description_str(describe(op), refresh=False)
                    bar.refresh()
                    if op.is_terminal:
                        break
                    if deadline is not None and time.monotonic() > deadline:
                        break
                    time.sleep(interval)
                except KeyboardInterrupt:
                    bar.clear()
                    _ask_cancel(op, stdout, stdin)
    finally:
        bar.close()
    return op


def format_log_line(line: dict[str, Any]) -> str:
    """One stored log line for a terminal: `HH:MM:SS.mmm LEVEL [where] message`."""
    at = str(line.get("logged_at") or "")
    stamp = f"{at[:10]} {at[11:23]}" if len(at) >= 19 else at
    where = line.get("source") or "here"
    return f"{stamp} {line.get('level') or ''!s:7} [{where}] {line.get('message') or ''}"


def follow_logs(
    *,
    operation_id: str,
    write: Callable[[str], Any],
    last: int = 100,
    follow: bool = False,
    interval: float = 0.5,
    sleep: Callable[[float], Any] = time.sleep,
    max_polls: int | None = None,
) -> Operation:
    """Write the operation's last `last` log lines; with `follow`, then every line it logs
    until it ends (the lines stored by the read that saw the end included). Every read goes
    through the read path, so a remote operation's lines are pulled from its agent. `sleep` and
    `max_polls` (the most reads; None: until the end) are for tests and callers that bound it."""
    op = selectors.operation_get(operation_id=operation_id)
    first = selectors.operation_new_logs(operation=op, cursor=op.logs_cursor, limit=1).first_seq
    cursor = max(op.logs_cursor - max(last, 0), first)
    polls = 0
    while True:
        page = selectors.operation_new_logs(
            operation=op, cursor=cursor, limit=selectors.MAX_LOGS_LIMIT
        )
        for line in page.lines:
            write(format_log_line(line))
        cursor = page.new_cursor
        polls += 1
        if cursor < op.logs_cursor:
            continue  # more stored than one page: keep printing before waiting
        if not follow or op.is_terminal or (max_polls is not None and polls >= max_polls):
            return op
        sleep(interval)
        op = selectors.operation_get(operation_id=operation_id)
