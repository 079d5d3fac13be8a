"""Operation logs: the log lines that belong to one operation, caught where they are logged.

A record belongs to an operation when it carries `operation_id` (`extra={"operation_id": …}`, as
`log_event` passes it) or when it is logged in a worker thread running that operation (the
`current_operation` context variable, set by `operations.local` around the work). The
`OperationLogHandler` (installed on the root logger by `ktrdr_site.settings.LOGGING`) turns such a
record into a line and leaves it in `pending_lines`, a bounded in-memory buffer of this process,
keyed by operation id. Nothing here touches the database: the lines are stored by the next write
this process makes to that operation's row (a pull, a status change: `operations.services`), in
the same transaction — the same "produced here, persisted when pulled" rule as progress
(docs/logs-and-retention.md).

Guarantees:

* `emit` does no I/O and takes no lock but the buffer's creation lock (only for an operation's
  first line): formatting the message, one `deque.append` (atomic) and one counter step. A logging
  call in a worker never waits on the database or on a reader.
* Everything is bounded: a line is at most `MAX_LINE_CHARS` characters (longer ones are cut and
  say so), an operation holds at most `BUFFER_LINES` unstored lines (older ones are dropped and
  the drain says how many), and the buffer holds at most `BUFFER_OPERATIONS` operations (the
  oldest is dropped first).
* Never raises into the caller: a failing emit goes to `logging`'s own error hook.

One format for every key event (`log_event`): `"<operation_id> <event>: <detail>"`, with the
event also on the record (`record.event`) and on the stored line.

No Django imports: agents and unit tests use it as plain Python.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

# The operation whose work this thread (or task) runs; set around the work by operations.local.
current_operation: ContextVar[str | None] = ContextVar("ktrdr_current_operation", default=None)

# Fixed, not a setting: it is part of the API contract (agents and backend cut at the same length).
MAX_LINE_CHARS = 2000
MAX_EVENT_CHARS = 32
MAX_SOURCE_CHARS = 64
MAX_LOGGER_CHARS = 100
# Unstored lines kept per operation between two writes of its row (a pull every TTL stores them).
BUFFER_LINES = 1000
# Operations with unstored lines kept in one process.
BUFFER_OPERATIONS = 2000
CUT_MARK = " …[cut]"


@contextlib.contextmanager
def operation_context(operation_id: str) -> Iterator[None]:
    """Lines logged inside belong to `operation_id` (a worker thread, around its work)."""
    token = current_operation.set(operation_id)
    try:
        yield
    finally:
        current_operation.reset(token)


def log_event(
    logger: logging.Logger,
    level: int,
    operation_id: str,
    event: str,
    detail: str = "",
    *args: Any,
    capture: bool = True,
    exc_info: bool = False,
) -> None:
    """Log one key event of an operation in the one format: `<id> <event>[: <detail>]`.

    `capture=False` keeps the line out of the operation's own log (read-path events such as cache
    hits: they say who looked, not what the operation did, and would flood its log)."""
    if not logger.isEnabledFor(level):
        return
    fmt = "%s %s: " + detail if detail else "%s %s"
    logger.log(
        level,
        fmt,
        operation_id,
        event,
        *args,
        exc_info=exc_info,
        extra={"operation_id": operation_id, "event": event, "op_capture": capture},
    )


def cut(text: str, limit: int = MAX_LINE_CHARS) -> str:
    """`text` at most `limit` characters, saying so when it was longer."""
    if len(text) <= limit:
        return text
    return text[: limit - len(CUT_MARK)] + CUT_MARK


class _Pending:
    __slots__ = ("counter", "lines")

    def __init__(self, maxlen: int) -> None:
        self.lines: deque[dict[str, Any]] = deque(maxlen=maxlen)
        # How many lines were ever appended (itertools.count steps atomically under the GIL).
        self.counter = itertools.count()


class PendingLines:
    """The process's unstored operation lines, by operation id (bounded, see the module doc)."""

    def __init__(
        self, *, max_operations: int = BUFFER_OPERATIONS, max_lines: int = BUFFER_LINES
    ) -> None:
        self._by_op: OrderedDict[str, _Pending] = OrderedDict()
        self._lock = threading.Lock()
        self._max_operations = max_operations
        self._max_lines = max_lines
        # Lines appended per operation and drained so far, to say how many the ring dropped.
        self._taken: dict[str, int] = {}

    def append(self, operation_id: str, line: dict[str, Any]) -> None:
        pending = self._by_op.get(operation_id)
        if pending is None:
            with self._lock:
                pending = self._by_op.get(operation_id)
                if pending is None:
                    pending = _Pending(self._max_lines)
                    self._by_op[operation_id] = pending
                    while len(self._by_op) > self._max_operations:
                        dropped, _ = self._by_op.popitem(last=False)
                        self._taken.pop(dropped, None)
        line["n"] = next(pending.counter)
        pending.lines.append(line)

    def drain(self, operation_id: str) -> list[dict[str, Any]]:
        """Take the operation's unstored lines, oldest first; a line saying how many the ring
        dropped comes first when it overflowed."""
        pending = self._by_op.get(operation_id)
        if pending is None:
            return []
        taken: list[dict[str, Any]] = []
        lines = pending.lines
        while True:
            try:
                taken.append(lines.popleft())
            except IndexError:
                break
        if not taken:
            return []
        with self._lock:
            expected = self._taken.get(operation_id, 0)
            self._taken[operation_id] = taken[-1]["n"] + 1
        lost = taken[0]["n"] - expected
        if lost > 0:
            first = taken[0]
            taken.insert(
                0,
                {
                    "logged_at": first["logged_at"],
                    "level": "WARNING",
                    "logger": "operations.oplog",
                    "event": "lines_dropped",
                    "message": (
                        f"{lost} log lines were dropped: more than {self._max_lines} "
                        "between two stores"
                    ),
                },
            )
        for line in taken:
            line.pop("n", None)
        return taken

    def discard(self, operation_id: str) -> None:
        with self._lock:
            self._by_op.pop(operation_id, None)
            self._taken.pop(operation_id, None)

    def has(self, operation_id: str) -> bool:
        """Whether unstored lines of the operation may be waiting here."""
        pending = self._by_op.get(operation_id)
        return pending is not None and bool(pending.lines)

    def operations(self) -> list[str]:
        return list(self._by_op)


pending_lines = PendingLines()


class OperationLogHandler(logging.Handler):
    """Catches records that belong to an operation and leaves them in `pending_lines`."""

    def __init__(self, level: int | str = logging.INFO, buffer: PendingLines | None = None) -> None:
        super().__init__(level)
        self.buffer = buffer or pending_lines

    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        # No handler lock: the buffer is safe to append to from any thread, and a logging call
        # in a worker must not queue behind another thread's emit.
        if not self.filter(record):
            return False
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            operation_id = getattr(record, "operation_id", None) or current_operation.get()
            if not operation_id or getattr(record, "op_capture", True) is False:
                return
            operation_id = str(operation_id)
            message = record.getMessage()
            # The line lives in the operation's own log: its id in front says nothing there.
            message = message.removeprefix(operation_id + " ")
            exc = record.exc_info[1] if record.exc_info else None
            if exc is not None and str(exc) not in message:
                # The line names the exception; the traceback stays in the console log.
                message = f"{message} ({type(exc).__name__}: {exc})"
            self.buffer.append(
                operation_id,
                {
                    "logged_at": record.created,
                    "level": record.levelname[:8],
                    "logger": record.name[:MAX_LOGGER_CHARS],
                    "event": str(getattr(record, "event", "") or "")[:MAX_EVENT_CHARS],
                    "message": cut(message),
                },
            )
        except Exception:
            self.handleError(record)


class ConsoleLevel(logging.Filter):
    """Drops records of the named loggers (and their children) below `level`.

    The apps' loggers run at the lower of the console's level (`KTRDR_LOG_LEVEL`) and the
    operation log's (`KTRDR_OPERATION_LOG_LEVEL`), so an operation's INFO lines are caught even
    when the console shows warnings only; this filter, on the console handler, keeps the console
    at its own level."""

    def __init__(self, level: int | str = logging.INFO, loggers: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.level = logging.getLevelName(level) if isinstance(level, str) else int(level)
        self.prefixes = tuple(loggers)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= self.level:
            return True
        name = record.name
        return not any(name == p or name.startswith(p + ".") for p in self.prefixes)
