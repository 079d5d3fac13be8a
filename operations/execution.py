"""Starting and stopping work: the one start path and the one cancel path for every kind and place.

* `operation_submit` — a validated request of a registered kind: choose the place
  (`operations.placement`), then start it there (a remote place) or in this process.
* `operation_launch` — run a prepared `Launch` in this process's worker pool (also how an agent
  runs what its backend sent).
* `operation_rerun` — start a finished operation again with the same inputs, through its kind's
  `rerun` hook; the new operation records which one it re-runs (`metadata["rerun_of"]`, and the
  `Operation.rerun_of` link).
* `operation_resume` — go on with a failed or cancelled operation from where it stopped, through
  its kind's `resume` hook: a new operation linked to it (`metadata["resume_of"]`,
  `Operation.resumed_from`), since terminal statuses are final (`docs/architecture.md` §15).
* `operation_cancel` — record the request on the row, then hand it to the place that runs the
  work. Work owned by another process learns of it from the row at its owner's next refresh.
* `OwnerRefresh` — while this process runs local work, it refreshes each of its runs through the
  read path at least once per TTL, whether or not anyone is watching: that persists the snapshot
  other processes on this host read, and is the refresh point where a cancel asked elsewhere
  reaches the worker (`docs/architecture.md` §5). It is the owner pulling its own bridge — the
  workers still never push and never do I/O for progress.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.db import connections, transaction

from operations import places, selectors, services
from operations.cancellation import CancellationToken
from operations.conf import ktrdr_setting
from operations.exceptions import Conflict, InvalidInput, NotAllowed, ServiceUnavailable
from operations.kinds import Launch, kind_find, kind_get
from operations.local import LocalRun, local_runs
from operations.models import (
    RERUN_OF,
    RESUME_METRICS_SEQ,
    RESUME_OF,
    Executor,
    Operation,
    OperationStatus,
    new_operation_id,
)
from operations.oplog import log_event
from operations.placement import choose_place

logger = logging.getLogger(__name__)


class OwnerRefresh:
    """One thread per process, alive only while this process has local runs."""

    def __init__(
        self,
        *,
        interval: Callable[[], float] = selectors.cache_ttl,
        wait: Callable[[float], Any] | None = None,
    ) -> None:
        self._interval = interval
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def tick(self) -> int:
        """Refresh every run of this process once (a no-op for one refreshed within the TTL)."""
        refreshed = 0
        for operation_id in local_runs.active_ids():
            try:
                selectors.operation_get(operation_id=operation_id)
                refreshed += 1
            except Exception:
                log_event(
                    logger,
                    logging.ERROR,
                    operation_id,
                    "owner_refresh_failed",
                    "",
                    capture=False,
                    exc_info=True,
                )
        return refreshed

    def stop_when_idle(self, timeout: float = 30.0) -> bool:
        """Wake the thread so that, with no local run left, it ends now (tests and shutdown)."""
        with self._lock:
            thread = self._thread
        if thread is None:
            return True
        if local_runs.active_ids():
            return False  # still work to refresh: it stays
        self._stop.set()
        thread.join(timeout)
        self._stop.clear()
        return not thread.is_alive()

    def ensure_running(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="ktrdr-owner-refresh", daemon=True
                )
                self._thread.start()

    def _loop(self) -> None:
        while True:
            # Wait first: a run just started has reported nothing yet, and its first reader
            # pulls it anyway; the owner's refresh is for the windows nobody else covers.
            woken = self._wait(max(float(self._interval()), 0.05))
            with self._lock:
                if not local_runs.active_ids():
                    self._thread = None
                    return
            if woken:
                self._stop.clear()  # a run started meanwhile: keep refreshing it
                continue
            try:
                self.tick()
            finally:
                # Hold no connection between ticks (a database drop or restart never waits on it).
                connections.close_all()


owner_refresh = OwnerRefresh()


def operation_launch(
    *,
    operation_type: str,
    launch: Launch,
    user: Any = None,
    extra_metadata: dict[str, Any] | None = None,
) -> Operation:
    """Create a local operation and queue its work on a worker thread once the row commits."""
    if not ktrdr_setting("LOCAL_EXECUTION"):
        raise ServiceUnavailable(
            "Local execution is switched off (KTRDR_LOCAL_EXECUTION=0) and this work "
            "was not sent to an agent"
        )
    metadata = {**launch.metadata, **(extra_metadata or {})}
    operation_id = new_operation_id(operation_type)
    user_id = user.pk if getattr(user, "is_authenticated", False) else None
    run = LocalRun(
        operation_id=operation_id,
        bridge=launch.bridge,
        token=CancellationToken(),
        work=launch.work,
        metadata=dict(metadata),
        user_id=user_id,
    )
    local_runs.register(run)
    try:
        with transaction.atomic():
            op = services.operation_create(
                operation_type=operation_type,
                metadata=metadata,
                executor=Executor.LOCAL,
                created_by=user,
                strategy_name=launch.strategy_name,
                input_series=launch.input_series,
                operation_id=operation_id,
            )
            transaction.on_commit(lambda: _start(run))
    except BaseException:
        local_runs.discard(operation_id)
        raise
    return op


def _start(run: LocalRun) -> None:
    local_runs.start(run)
    owner_refresh.ensure_running()


def operation_submit(
    *,
    operation_type: str,
    metadata: dict[str, Any],
    execution_mode: str | None = None,
    agent: str | None = None,
    require_gpu: bool = False,
    user: Any = None,
    strategy_name: str = "",
    input_series: Iterable[str] = (),
    detach: bool = False,
) -> Operation:
    """Start validated work of a registered kind where it should run; returns the operation.

    `detach` is for callers that will not stay to run it (a management command that returns at
    once): work that would run in this process is then refused with the reason, never started
    and left to die with the process.
    """
    kind = kind_get(operation_type)
    placement = choose_place(kind, metadata, execution_mode, agent, require_gpu)
    metadata = {**metadata, "placement": placement.as_metadata()}
    if placement.is_remote:
        place = places.remote_places()[placement.place]
        return place.start(
            kind=kind,
            target=placement.target,
            metadata=metadata,
            user=user,
            strategy_name=strategy_name,
            input_series=input_series,
        )
    if detach:
        raise InvalidInput(
            f"this {kind.name.replace('_', ' ')} would run inside this command "
            f"({placement.reason}) and end when the command exits; follow it instead, or start "
            "it from the dashboard or the API, or register an agent that can take it",
            field="no_follow",
        )
    launch = kind.prepare(metadata, None)
    if strategy_name and not launch.strategy_name:
        launch.strategy_name = strategy_name
    if not launch.input_series:
        launch.input_series = list(input_series)
    return operation_launch(operation_type=kind.name, launch=launch, user=user)


def operation_rerun(*, operation_id: str, user: Any = None, detach: bool = False) -> Operation:
    """Start a finished operation again with the inputs it stored, as a new operation of `user`.

    Whoever may see an operation may re-run it (`user=None`: the operator at this machine's
    terminal). `OperationNotFound` (404) for an unknown id, `Conflict` (409) while it is still
    active or when its kind cannot be re-run; the kind validates the stored inputs again (400).
    """
    old = selectors.operation_get(operation_id=operation_id)
    if not old.is_terminal:
        raise Conflict(
            f"Operation {operation_id} is {old.status}; it can be re-run once it has ended",
            details={"operation_id": operation_id, "status": old.status},
        )
    kind = kind_get(old.operation_type)
    if kind.rerun is None:
        raise Conflict(
            f"{kind.name} operations cannot be re-run",
            details={"operation_id": operation_id, "operation_type": kind.name},
        )
    again = kind.rerun(dict(old.metadata or {}))
    return operation_submit(
        operation_type=kind.name,
        metadata={**again.metadata, RERUN_OF: old.operation_id},
        execution_mode=again.execution_mode,
        agent=again.agent,
        require_gpu=again.require_gpu,
        user=user,
        strategy_name=again.strategy_name or old.strategy_name,
        input_series=again.input_series or list(old.input_series or []),
        detach=detach,
    )


RESUMABLE_STATUSES = frozenset({OperationStatus.FAILED, OperationStatus.CANCELLED})


def may_resume(user: Any, operation: Operation) -> bool:
    """Who may cancel an operation may resume it: a resume goes on with that person's work
    (`docs/architecture.md` §13)."""
    return may_cancel(user, operation)


def resumable(operation: Operation) -> bool:
    """Failed or cancelled, of a kind with a `resume` hook (the page's button; the hook itself
    says whether there is anything to resume from)."""
    if operation.status not in RESUMABLE_STATUSES:
        return False
    kind = kind_find(operation.operation_type)
    return kind is not None and kind.resume is not None


def operation_resume(*, operation_id: str, user: Any = None, detach: bool = False) -> Operation:
    """Go on with a failed or cancelled operation from where it stopped, as a new operation.

    `OperationNotFound` (404) for an unknown id; `NotAllowed` (403) unless `may_resume`;
    `Conflict` (409) unless it failed or was cancelled, when its kind has no `resume` hook, or
    when the hook finds nothing to resume from; `InvalidInput` (400) when what it finds fails
    its check (a checkpoint whose sha256 does not match). The new operation names the old one
    in `metadata.resume_of` (the `resumed_from` link) and starts with the old one's metric
    records up to the resume point, copied with the same seqs.
    """
    old = selectors.operation_get(operation_id=operation_id)
    if not may_resume(user, old):
        raise NotAllowed(
            f"{user} may not resume {operation_id}: it was started by someone else "
            "(users resume their own operations; staff resume any)",
            details={"operation_id": operation_id},
        )
    if old.status not in RESUMABLE_STATUSES:
        raise Conflict(
            f"Operation {operation_id} is {old.status}; only a failed or cancelled operation "
            "can be resumed",
            details={"operation_id": operation_id, "status": old.status},
        )
    kind = kind_get(old.operation_type)
    if kind.resume is None:
        raise Conflict(
            f"{kind.name} operations cannot be resumed (re-run it instead)",
            details={"operation_id": operation_id, "operation_type": kind.name},
        )
    plan = kind.resume(old)
    metadata = {**plan.metadata, RESUME_OF: old.operation_id}
    upto = metadata.get(RESUME_METRICS_SEQ)
    if isinstance(upto, int) and upto > 0:
        # What the old run stored of its records before the resume point: a run killed between
        # two pulls stored fewer; the new run's work emits the rest (seq numbering goes on).
        metadata[RESUME_METRICS_SEQ] = selectors.operation_metrics_stored(
            operation_id=old.operation_id, below=upto
        )
    return operation_submit(
        operation_type=kind.name,
        metadata=metadata,
        execution_mode=plan.execution_mode,
        agent=plan.agent,
        require_gpu=plan.require_gpu,
        user=user,
        strategy_name=plan.strategy_name or old.strategy_name,
        input_series=plan.input_series or list(old.input_series or []),
        detach=detach,
    )


def rerun_edit_url(operation: Operation) -> str | None:
    """The kind's start form pre-filled with this operation's inputs, if the kind has one."""
    try:
        kind = kind_get(operation.operation_type)
    except InvalidInput:
        return None
    if kind.edit_url is None or kind.rerun is None:
        return None
    return kind.edit_url(dict(operation.metadata or {}))


def may_cancel(user: Any, operation: Operation) -> bool:
    """Users cancel their own work; staff cancel any. `user=None` is the operator at this
    machine's terminal (management commands), who may cancel anything."""
    if user is None:
        return True
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_staff or user.is_superuser:
        return True
    return operation.created_by_id is not None and operation.created_by_id == user.pk


def operation_cancel(*, operation_id: str, reason: str = "", user: Any = None) -> Operation:
    """Ask the work to stop, wherever it runs. Pending work ends at once; running work ends
    `cancelled` when its worker acknowledges at its next stop point; terminal work raises
    `IllegalTransition` (409). Repeatable. `NotAllowed` (403) unless `may_cancel(user, op)`."""
    current = Operation.objects.filter(operation_id=operation_id).first()
    if current is not None and not may_cancel(user, current):
        raise NotAllowed(
            f"{user} may not cancel {operation_id}: it was started by someone else "
            "(users cancel their own operations; staff cancel any)",
            details={"operation_id": operation_id},
        )
    op = services.operation_request_cancel(operation_id=operation_id, reason=reason)
    if op.status in (OperationStatus.CANCELLING, OperationStatus.CANCELLED):
        transaction.on_commit(lambda: _deliver_cancel(op, op.cancel_reason))
    return op


def _deliver_cancel(op: Operation, reason: str) -> None:
    place = places.place_for(op)
    if place is None:
        log_event(
            logger,
            logging.WARNING,
            op.operation_id,
            "no_place",
            "no place for executor %s",
            op.executor,
        )
        return
    try:
        place.cancel(op, reason)
    except Exception:
        # The request is on the row: the place's next refresh delivers it again.
        log_event(
            logger,
            logging.ERROR,
            op.operation_id,
            "cancel_not_delivered",
            "to %s",
            place.name,
            exc_info=True,
        )
    try:
        # What handing it over logged (e.g. forwarded to an agent) joins the operation's log now:
        # nothing else may write this row for a while.
        services.operation_store_log_lines(operation_id=op.operation_id)
    except Exception:
        logger.exception("%s log_not_stored", op.operation_id)


def wait_for_end(
    *, operation_id: str, timeout: float | None = None, sleep: Callable[[float], Any] = time.sleep
) -> Operation:
    """Read the operation through the read path until it ends (or `timeout` passes)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        op = selectors.operation_get(operation_id=operation_id)
        if op.is_terminal or (deadline is not None and time.monotonic() > deadline):
            return op
        sleep(min(selectors.cache_ttl(), 0.5))
