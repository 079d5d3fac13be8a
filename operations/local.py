"""Local execution: worker functions in worker threads of this process, each with its bridge.

`LocalRuns` owns the thread pool and the registry operation id → (bridge, token). The registry is
how readers find a local bridge to pull from; an operation with no entry here was started by
another (now gone) process instance. A run stays registered until its outcome is saved: if the
database refuses it (disk full, an outage), the outcome and the bridge's metrics are kept and
saved at the run's next refresh (`finish_pending`), so finished work is never lost or taken for
interrupted while this process lives.

A worker is a plain synchronous function `work(ctx) -> result_summary`. It reports through
`ctx.bridge`, checks `ctx.token` at its stop points and raises `OperationCancelled` to acknowledge
a cancel. Everything else — status changes, the final drain of its metrics, the log — is done here
through the services, so a worker never touches the database for progress.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import close_old_connections, connections

from operations import metrics, services
from operations.bridge import ProgressBridge
from operations.cancellation import CancellationToken, OperationCancelled
from operations.conf import ktrdr_setting
from operations.exceptions import IllegalTransition
from operations.oplog import log_event, operation_context

logger = logging.getLogger(__name__)


@dataclass
class WorkContext:
    """What a worker gets: its operation id, its parameters, its bridge and its token.

    `artifacts_dir` is set where the files a run leaves are fetched by someone else (on an
    agent); `user_id` is the user who started it, for rows the work creates (a model).
    """

    operation_id: str
    metadata: dict[str, Any]
    bridge: ProgressBridge
    token: CancellationToken
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("ktrdr.worker"))
    artifacts_dir: Path | None = None
    user_id: int | None = None


Work = Callable[[WorkContext], dict[str, Any] | None]


@dataclass
class LocalRun:
    operation_id: str
    bridge: ProgressBridge
    token: CancellationToken
    work: Work
    metadata: dict[str, Any]
    thread_name: str = ""
    user_id: int | None = None
    # Set when the work has returned: how to record its outcome, until that is saved.
    outcome: Callable[[], Any] | None = None

    @property
    def finished(self) -> bool:
        return self.outcome is not None


class LocalRuns:
    """Process-wide registry and pool of local operations."""

    def __init__(self) -> None:
        self._runs: dict[str, LocalRun] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_size = 0

    def _get_pool(self) -> ThreadPoolExecutor:
        size = int(ktrdr_setting("LOCAL_WORKERS"))
        with self._lock:
            if self._pool is None or self._pool_size != size:
                # A resized pool takes new work; the old one finishes what it has.
                if self._pool is not None:
                    self._pool.shutdown(wait=False)
                self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="ktrdr-worker")
                self._pool_size = size
                metrics.POOL_SIZE.set(size)
            return self._pool

    def get(self, operation_id: str) -> LocalRun | None:
        return self._runs.get(operation_id)

    def active_ids(self) -> list[str]:
        return list(self._runs)

    def register(self, run: LocalRun) -> None:
        """Make the bridge readable. Done before the row commits, so no reader ever sees a
        committed local operation without its run (it would take it for interrupted)."""
        with self._lock:
            self._runs[run.operation_id] = run

    def discard(self, operation_id: str) -> None:
        with self._lock:
            self._runs.pop(operation_id, None)

    def start(self, run: LocalRun) -> None:
        """Queue a registered run on the pool (after its row committed)."""
        pool = self._get_pool()
        metrics.POOL_QUEUED.inc()
        try:
            pool.submit(self._execute, run)
        except BaseException:
            metrics.POOL_QUEUED.dec()
            raise

    def _execute(self, run: LocalRun) -> None:
        metrics.POOL_QUEUED.dec()
        metrics.POOL_BUSY.inc()
        try:
            self._execute_run(run)
        finally:
            metrics.POOL_BUSY.dec()

    def cancel(self, operation_id: str, reason: str) -> bool:
        run = self._runs.get(operation_id)
        if run is None:
            return False
        if not run.token.is_cancelled:
            log_event(
                logger, logging.INFO, operation_id, "cancel_delivered", "to its worker (%s)", reason
            )
        run.token.cancel(reason)
        return True

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until no local run is registered (tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while self._runs:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def _execute_run(self, run: LocalRun) -> None:
        op_id = run.operation_id
        run.thread_name = threading.current_thread().name
        close_old_connections()
        try:
            started = self._start(run)
            # Hand the start's connection back: a run lasts minutes to hours and may never touch
            # the database again before its outcome (a pooled connection held that long starves
            # requests once runs outnumber the pool).
            connections.close_all()
            if started:
                ctx = WorkContext(
                    operation_id=op_id,
                    metadata=run.metadata,
                    bridge=run.bridge,
                    token=run.token,
                    user_id=run.user_id,
                )
                # Whatever the work logs, from any logger, is a line of this operation's log.
                with operation_context(op_id):
                    run.outcome = self._run_work(run, ctx)
        except Exception:
            logger.exception("%s run_failed: the runner itself failed", op_id)
            started = False
        try:
            if not started or self.record_outcome(run):
                self._deregister(op_id)
        finally:
            # The worker thread's own connections; a reader's retry keeps its request's.
            connections.close_all()
        # Else the run stays registered with its outcome: this process is alive and the work is
        # done, so no reader may take it for interrupted; its next refresh saves it.

    @staticmethod
    def _start(run: LocalRun) -> bool:
        op_id = run.operation_id
        if run.token.is_cancelled:
            # Cancelled while queued: the cancel service already ended it as cancelled.
            return False
        try:
            services.operation_start(operation_id=op_id)
        except IllegalTransition:
            # Cancelled while queued, from another process (the row ended; no token here).
            log_event(
                logger, logging.INFO, op_id, "not_started", "it ended before a worker took it"
            )
            return False
        except Exception:
            logger.exception("%s start_failed: could not mark it running", op_id)
            return False
        return True

    @staticmethod
    def _run_work(run: LocalRun, ctx: WorkContext) -> Callable[[], Any]:
        """Run the work; return how to record its outcome (kept until that succeeds)."""
        op_id = run.operation_id
        try:
            result = run.work(ctx)
        except OperationCancelled as exc:
            log_event(
                logger, logging.INFO, op_id, "cancel_seen", "the work stopped at %s", exc.stop_point
            )
            partial = exc.partial_result or run.bridge.final_result
            stop_point = exc.stop_point
            # Why this process stopped it (SIGTERM, shutdown) where no request on the row said.
            reason = ctx.token.reason
            return lambda: services.operation_acknowledge_cancel(
                operation_id=op_id,
                stop_point=stop_point,
                partial_result=partial,
                pull=services.pull_from_bridge(run.bridge),
                reason=reason,
            )
        except Exception as exc:
            # The traceback for the console; the operation's log gets the "failed" line.
            log_event(
                logger,
                logging.ERROR,
                op_id,
                "work_raised",
                "%s: %s",
                type(exc).__name__,
                exc,
                capture=False,
                exc_info=True,
            )
            message = f"{type(exc).__name__}: {exc}"
            return lambda: services.operation_fail(
                operation_id=op_id,
                error_message=message,
                partial_result=run.bridge.final_result,
                pull=services.pull_from_bridge(run.bridge),
            )
        return lambda: services.operation_complete(
            operation_id=op_id,
            result_summary=result or {},
            pull=services.pull_from_bridge(run.bridge),
        )

    def record_outcome(self, run: LocalRun) -> bool:
        """Save a finished run's outcome and metrics; False (kept for a retry) if that failed."""
        if run.outcome is None:
            return False
        try:
            run.outcome()
        except IllegalTransition:
            pass  # already ended (another reader, a retry that did go through): it stands
        except Exception:
            logger.exception(
                "%s outcome_not_saved: kept in memory, retried at its next refresh",
                run.operation_id,
            )
            return False
        run.outcome = None
        return True

    def finish_pending(self, operation_id: str) -> bool:
        """Retry saving the outcome of a finished run; True once it is saved and deregistered."""
        run = self._runs.get(operation_id)
        if run is None or not run.finished:
            return False
        if self.record_outcome(run):
            self._deregister(operation_id)
            return True
        return False

    def _deregister(self, operation_id: str) -> None:
        with self._lock:
            self._runs.pop(operation_id, None)


local_runs = LocalRuns()


def _cancel_all_at_exit() -> None:
    # The pool's own exit hook joins its threads; without this a long training would hold up
    # the server's shutdown. Cancelled runs end at their next stop point and are recorded as such.
    for operation_id in local_runs.active_ids():
        local_runs.cancel(operation_id, "its process is shutting down")


@contextlib.contextmanager
def sigterm_cancels_local_work() -> Iterator[None]:
    """While a command follows work it runs itself, SIGTERM cancels that work (its token; no
    database write in the handler) instead of killing the process: the work stops at its next
    stop point and records itself cancelled — a training writes its checkpoint first — and the
    follow then ends. Why: a supervisor stopping the command (systemd, a container runtime)
    sends SIGTERM; killed outright, the run would only be found interrupted later, its last
    epochs lost. Daphne (backend and agents) stops its reactor on SIGTERM and the exit hook
    below cancels the same way. Outside the main thread it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def cancel_all(_signum: int, _frame: Any) -> None:
        for operation_id in local_runs.active_ids():
            local_runs.cancel(operation_id, "its process got SIGTERM")

    previous = signal.signal(signal.SIGTERM, cancel_all)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# Registered after concurrent.futures' hook, so it runs first (the hooks run in reverse order).
if hasattr(threading, "_register_atexit"):
    threading._register_atexit(_cancel_all_at_exit)
