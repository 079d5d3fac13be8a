"""Every write to an operation goes through these functions (the status machine lives here).

Each service locks the row (`select_for_update`), checks the transition, writes, and invalidates
the read cache after commit. Terminal states are final: recording a pull on a terminal row, or
marking it interrupted or unreachable, leaves it as it is; any other change (complete, fail,
acknowledge a cancel, a cancel request) raises `IllegalTransition`, which callers racing to end
one operation catch — so the first outcome stands and is never overwritten.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from operations import cache as op_cache
from operations import metrics
from operations.bridge import ProgressBridge
from operations.conf import ktrdr_setting
from operations.exceptions import IllegalTransition, OperationNotFound
from operations.instance import current_instance_id
from operations.kinds import kind_find
from operations.models import (
    RERUN_OF,
    RESUME_METRICS_SEQ,
    RESUME_OF,
    Executor,
    Operation,
    OperationLog,
    OperationMetric,
    OperationStatus,
    RunFigure,
    empty_progress,
    new_operation_id,
)
from operations.oplog import (
    MAX_EVENT_CHARS,
    MAX_LINE_CHARS,
    MAX_SOURCE_CHARS,
    cut,
    log_event,
    pending_lines,
)

logger = logging.getLogger(__name__)

S = OperationStatus
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    S.PENDING: frozenset({S.RUNNING, S.FAILED, S.CANCELLING, S.CANCELLED}),
    S.RUNNING: frozenset({S.COMPLETED, S.FAILED, S.CANCELLING, S.CANCELLED}),
    S.CANCELLING: frozenset({S.CANCELLED, S.COMPLETED, S.FAILED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}


# How many of the records one pull stored stay attached to the operation it returns.
RECENT_METRICS = 200


@dataclass
class Pull:
    """What one read of a source (a bridge or an agent) produced.

    `records` are `(source_seq, record)` pairs; `source_cursor` is where the next pull starts.
    Applying a pull keeps only records at or past the row's persisted source cursor, so two
    readers applying overlapping pulls never store a record twice.
    """

    snapshot: dict[str, Any] | None
    records: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    source_cursor: int = 0
    # Log lines pulled from a remote source (an agent's stored lines): `(source_seq, line)`
    # pairs, applied like the records against the row's `remote_logs_cursor`. Lines logged in
    # this process are not carried here: every write of the row stores them (`_store_lines`).
    logs: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    logs_cursor: int = 0
    logs_source: str = ""


def pull_from_bridge(bridge: ProgressBridge, cursor: int = 0) -> Pull:
    records, new_cursor = bridge.metrics_since(cursor)
    snapshot = bridge.snapshot()
    return Pull(
        snapshot=snapshot,
        records=list(enumerate(records, start=cursor)),
        source_cursor=new_cursor,
    )


# --- helpers ----------------------------------------------------------------------------------
def _locked(operation_id: str) -> Operation:
    try:
        return Operation.objects.select_for_update().get(operation_id=operation_id)
    except Operation.DoesNotExist:
        raise OperationNotFound(operation_id) from None


def _transition(op: Operation, target: str, why: str = "") -> None:
    if target not in ALLOWED_TRANSITIONS[op.status]:
        raise IllegalTransition(op.operation_id, op.status, target, why)
    op.status = target


def _after_commit_invalidate(operation_id: str) -> None:
    transaction.on_commit(lambda: op_cache.invalidate(operation_id))


def _ts(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return timezone.now()
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return timezone.now()


def _took(op: Operation) -> str:
    if op.started_at is None:
        return "no time"
    return f"{(timezone.now() - op.started_at).total_seconds():.1f} s"


def _apply_pull(op: Operation, pull: Pull | None) -> None:
    """Store a pulled snapshot and the records the row has not seen (caller holds the lock)."""
    if pull is None:
        return
    start = op.remote_metrics_cursor
    fresh = [(src, rec) for src, rec in pull.records if src >= start]
    if fresh:
        rows = []
        seq = op.metrics_cursor
        for _src, record in sorted(fresh, key=lambda pair: pair[0]):
            payload = {k: v for k, v in record.items() if k not in {"seq", "kind", "recorded_at"}}
            rows.append(
                OperationMetric(
                    operation=op,
                    seq=seq,
                    kind=str(record.get("kind", "metric"))[:32],
                    recorded_at=_ts(record.get("recorded_at")),
                    payload=payload,
                )
            )
            seq += 1
        OperationMetric.objects.bulk_create(rows)
        # The records just stored ride along with the snapshot the read path caches, so a viewer
        # that is one pull behind gets them without a query (selectors.operation_new_metrics).
        kept = rows[-RECENT_METRICS:]
        op.recent_metrics = (
            kept[0].seq,
            [
                {
                    **m.payload,
                    "seq": m.seq,
                    "kind": m.kind,
                    "recorded_at": m.recorded_at.isoformat(),
                }
                for m in kept
            ],
        )
        op.metrics_cursor = seq
    op.remote_metrics_cursor = max(start, pull.source_cursor)
    log_start = op.remote_logs_cursor
    remote_lines = [line for src, line in sorted(pull.logs, key=lambda p: p[0]) if src >= log_start]
    if remote_lines:
        _store_lines(op, remote_lines, source=pull.logs_source)
    op.remote_logs_cursor = max(log_start, pull.logs_cursor)
    if pull.snapshot is not None:
        progress = empty_progress()
        progress.update({k: v for k, v in pull.snapshot.items() if k in progress})
        op.progress = progress
    op.refreshed_at = timezone.now()


def _store_lines(op: Operation, lines: list[dict[str, Any]], *, source: str = "") -> None:
    """Append lines to the operation's log (caller holds the row lock and saves the row), keeping
    the newest `KTRDR_OPERATION_LOG_MAX_LINES`. Every field is cut to its column."""
    if not lines:
        return
    seq = op.logs_cursor
    rows = []
    for line in lines:
        rows.append(
            OperationLog(
                operation=op,
                seq=seq,
                logged_at=_ts(line.get("logged_at")),
                level=str(line.get("level") or "INFO")[:8],
                source=str(line.get("source") or source)[:MAX_SOURCE_CHARS],
                event=str(line.get("event") or "")[:MAX_EVENT_CHARS],
                message=cut(str(line.get("message") or ""), MAX_LINE_CHARS),
            )
        )
        seq += 1
    OperationLog.objects.bulk_create(rows)
    op.logs_cursor = seq
    keep = int(ktrdr_setting("OPERATION_LOG_MAX_LINES"))
    if seq > keep:
        # A ring in the table: the oldest lines go (one indexed range delete, only past the cap).
        OperationLog.objects.filter(operation_id=op.pk, seq__lt=seq - keep).delete()


def _store_own_lines(op: Operation) -> bool:
    """Store the lines this process logged for the operation since its last write."""
    lines = pending_lines.drain(op.operation_id)
    _store_lines(op, lines)
    return bool(lines)


@transaction.atomic
def operation_store_log_lines(*, operation_id: str) -> None:
    """Store this process's unstored lines of an operation now (after a step that logs but
    does not write the row, e.g. handing a cancel to its place). Terminal rows take lines too:
    a log is history, not state."""
    if not pending_lines.has(operation_id):
        return
    op = _locked(operation_id)
    if _store_own_lines(op):
        op.save(update_fields=["logs_cursor", "updated_at"])


# --- creation ---------------------------------------------------------------------------------
@transaction.atomic
def operation_create(
    *,
    operation_type: str,
    metadata: dict[str, Any] | None = None,
    executor: str = Executor.LOCAL,
    agent: str = "",
    created_by: Any = None,
    strategy_name: str = "",
    input_series: Iterable[str] = (),
    operation_id: str | None = None,
) -> Operation:
    rerun_of = (metadata or {}).get(RERUN_OF)
    resume_of = (metadata or {}).get(RESUME_OF)
    resumed_from = (
        Operation.objects.filter(operation_id=resume_of).first()
        if isinstance(resume_of, str) and resume_of
        else None
    )
    op = Operation.objects.create(
        # A re-run names the operation it re-runs in its metadata (on an agent it is not there).
        rerun_of=Operation.objects.filter(operation_id=rerun_of).first()
        if isinstance(rerun_of, str) and rerun_of
        else None,
        resumed_from=resumed_from,
        operation_id=operation_id or new_operation_id(operation_type),
        operation_type=operation_type,
        metadata=metadata or {},
        executor=executor,
        agent=agent,
        owner=current_instance_id() if executor == Executor.LOCAL else "",
        created_by=created_by if getattr(created_by, "is_authenticated", False) else None,
        strategy_name=strategy_name,
        input_series=list(input_series),
    )
    if resumed_from is not None:
        _copy_resumed_metrics(op, resumed_from, (metadata or {}).get(RESUME_METRICS_SEQ))
    log_event(logger, logging.INFO, op.operation_id, "created", "%s, %s", operation_type, executor)
    if _store_own_lines(op):
        op.save(update_fields=["logs_cursor"])
    return op


def _copy_resumed_metrics(op: Operation, parent: Operation, upto: Any) -> None:
    """A resume starts with its parent's records seq 0…upto-1 (same seq, kind, time, payload),
    and its own work's records are stored from `upto` on: one curve, no gap, no duplicate
    (`docs/architecture.md` §15). Copied in the transaction that creates the row, so no pull
    of the new run is stored before them."""
    if not isinstance(upto, int) or isinstance(upto, bool) or upto <= 0:
        return
    records = [
        OperationMetric(
            operation=op, seq=m.seq, kind=m.kind, recorded_at=m.recorded_at, payload=m.payload
        )
        for m in OperationMetric.objects.filter(operation=parent, seq__lt=upto).order_by("seq")
    ]
    OperationMetric.objects.bulk_create(records, batch_size=1000)
    op.metrics_cursor = upto
    op.save(update_fields=["metrics_cursor"])


# --- lifecycle ----------------------------------------------------------------------------------
@transaction.atomic
def operation_start(*, operation_id: str) -> Operation:
    op = _locked(operation_id)
    _transition(op, S.RUNNING)
    op.started_at = timezone.now()
    where = f"agent {op.agent}" if op.executor == Executor.AGENT else "this host"
    log_event(logger, logging.INFO, operation_id, "started", "running on %s", where)
    _store_own_lines(op)
    op.save()
    _after_commit_invalidate(operation_id)
    kind = op.operation_type
    transaction.on_commit(lambda: metrics.OPERATION_STARTS.labels(kind).inc())
    return op


@transaction.atomic
def operation_record_pull(*, operation_id: str, pull: Pull) -> Operation:
    """Save what a reader pulled. A terminal row is returned unchanged (final state)."""
    op = _locked(operation_id)
    if op.is_terminal:
        return op
    _apply_pull(op, pull)
    if op.unreachable_since is not None:
        away = (timezone.now() - op.unreachable_since).total_seconds()
        log_event(
            logger, logging.INFO, operation_id, "reachable", "answers again after %.1f s", away
        )
        op.unreachable_since = None
    _store_own_lines(op)
    op.save()
    return op


def _finish(
    op: Operation,
    target: str,
    *,
    pull: Pull | None,
    result_summary: dict[str, Any] | None = None,
    error_message: str = "",
    event: tuple[int, str, str, tuple[Any, ...]] | None = None,
) -> Operation:
    """End the operation; `event` is the line that says so (level, event, detail, args), logged
    once the transition is known to be legal and stored with the row."""
    _apply_pull(op, pull)
    _transition(op, target)
    if event is not None:
        level, name, detail, args = event
        log_event(logger, level, op.operation_id, name, detail, *args)
    _store_own_lines(op)
    op.completed_at = timezone.now()
    if op.started_at is None:
        op.started_at = op.completed_at
    if result_summary is not None:
        op.result_summary = result_summary
    if error_message:
        op.error_message = error_message[:10_000]
    if target == S.COMPLETED:
        progress = dict(op.progress or empty_progress())
        progress["percentage"] = 100.0
        progress["eta_seconds"] = None
        op.progress = progress
    op.unreachable_since = None
    op.save()
    _store_run_figures(op)
    _after_commit_invalidate(op.operation_id)
    kind = op.operation_type
    transaction.on_commit(lambda: metrics.OPERATION_ENDS.labels(kind, target).inc())
    return op


def _store_run_figures(op: Operation) -> None:
    """A run's figures (its kind's `run_figures` and its duration), for the runs table."""
    kind = kind_find(op.operation_type)
    if kind is None or not kind.run_columns:
        return
    figures: dict[str, float] = {}
    if kind.run_figures is not None:
        try:
            figures = dict(kind.run_figures(op.result_summary or {}))
        except Exception:
            logger.exception("%s run_figures_failed", op.operation_id)
    if op.duration_seconds is not None:
        figures["duration_seconds"] = op.duration_seconds
    RunFigure.objects.bulk_create(
        [
            RunFigure(operation=op, name=name, value=float(value))
            for name, value in figures.items()
            if isinstance(value, (int, float)) and math.isfinite(value)
        ],
        ignore_conflicts=True,
    )


@transaction.atomic
def operation_complete(
    *, operation_id: str, result_summary: dict[str, Any], pull: Pull | None = None
) -> Operation:
    op = _locked(operation_id)
    if op.status == S.CANCELLING:
        # The work ended before it saw the cancel: it completed, and says so.
        result_summary = {**result_summary, "cancel_not_needed": True}
    note = " (the cancel came after its last stop point)" if op.status == S.CANCELLING else ""
    return _finish(
        op,
        S.COMPLETED,
        pull=pull,
        result_summary=result_summary,
        event=(logging.INFO, "completed", "%s", (f"in {_took(op)}{note}",)),
    )


@transaction.atomic
def operation_fail(
    *,
    operation_id: str,
    error_message: str,
    partial_result: dict[str, Any] | None = None,
    pull: Pull | None = None,
) -> Operation:
    op = _locked(operation_id)
    return _finish(
        op,
        S.FAILED,
        pull=pull,
        result_summary=partial_result,
        error_message=error_message,
        event=(logging.WARNING, "failed", "%s", (cut(error_message, 500),)),
    )


@transaction.atomic
def operation_request_cancel(*, operation_id: str, reason: str = "") -> Operation:
    """Record a cancel request on the row. Pending → cancelled at once; running → cancelling
    until the worker acknowledges; cancelling → unchanged (repeatable); terminal →
    IllegalTransition (409).

    This is the row half of a cancel only: callers use `operations.execution.operation_cancel`,
    which also hands the request to the place that runs the work (`docs/architecture.md` §6).
    """
    op = _locked(operation_id)
    reason = (reason or "cancelled by user")[:500]
    if op.status == S.CANCELLING:
        return op
    if op.is_terminal:
        raise IllegalTransition(op.operation_id, op.status, S.CANCELLED, "it has already ended")
    now = timezone.now()
    op.cancel_requested_at = now
    op.cancel_reason = reason
    if op.status == S.PENDING and op.executor == Executor.LOCAL:
        # Queued here or in another process on this host: no worker has it yet, so nothing
        # needs to acknowledge (the queued run finds its row ended and does not start).
        _transition(op, S.CANCELLED)
        op.cancel_acknowledged_at = now
        op.completed_at = now
        op.result_summary = {"stopped_at": "before start"}
    else:
        _transition(op, S.CANCELLING)
    log_event(logger, logging.INFO, operation_id, "cancel_requested", "%s", reason)
    if op.status == S.CANCELLED:
        log_event(logger, logging.INFO, operation_id, "cancelled", "before start")
    _store_own_lines(op)
    op.save()
    _after_commit_invalidate(operation_id)
    kind = op.operation_type
    transaction.on_commit(lambda: metrics.CANCEL_REQUESTS.labels(kind).inc())
    if op.status == S.CANCELLED:
        transaction.on_commit(lambda: metrics.OPERATION_ENDS.labels(kind, S.CANCELLED).inc())
    return op


@transaction.atomic
def operation_acknowledge_cancel(
    *,
    operation_id: str,
    stop_point: str,
    partial_result: dict[str, Any] | None = None,
    pull: Pull | None = None,
    reason: str = "",
) -> Operation:
    """The worker stopped at `stop_point`: cancelled. `reason`: why the worker's own process
    stopped it, recorded where no cancel request on the row gave one."""
    op = _locked(operation_id)
    if op.cancel_requested_at is None:
        op.cancel_requested_at = timezone.now()
    if not op.cancel_reason and reason:
        op.cancel_reason = reason[:500]
    op.cancel_acknowledged_at = timezone.now()
    summary = {**(partial_result or {}), "stopped_at": stop_point}
    return _finish(
        op,
        S.CANCELLED,
        pull=pull,
        result_summary=summary,
        event=(logging.INFO, "cancel_acknowledged", "stopped at %s", (stop_point,)),
    )


@transaction.atomic
def operation_mark_interrupted(*, operation_id: str, reason: str) -> Operation:
    """End an operation whose worker is gone. A row that already ended is left as it is."""
    op = _locked(operation_id)
    if op.is_terminal:
        return op
    return _finish(
        op,
        S.FAILED,
        pull=None,
        error_message=f"interrupted: {reason}",
        event=(logging.WARNING, "interrupted", "%s", (reason,)),
    )


@transaction.atomic
def operation_mark_unreachable(*, operation_id: str, error: str) -> Operation:
    """Record that the place running the operation did not answer; status is kept."""
    op = _locked(operation_id)
    if op.is_terminal:
        return op
    if op.unreachable_since is None:
        op.unreachable_since = timezone.now()
        # Once per outage: the first failure says it; the ones after it are DEBUG, off the log.
        log_event(logger, logging.WARNING, operation_id, "unreachable", "%s", error[:500])
    else:
        log_event(logger, logging.DEBUG, operation_id, "still_unreachable", "%s", error[:200])
    metadata = dict(op.metadata or {})
    metadata["last_refresh_error"] = error[:500]
    op.metadata = metadata
    _store_own_lines(op)
    op.save(update_fields=["unreachable_since", "metadata", "logs_cursor", "updated_at"])
    return op


@transaction.atomic
def operation_set_produced_model(*, operation_id: str, model_label: str) -> None:
    """Lineage: the model an operation produced (set when the model is registered)."""
    Operation.objects.filter(operation_id=operation_id).update(produced_model=model_label[:120])
    _after_commit_invalidate(operation_id)


@transaction.atomic
def operation_update_metadata(*, operation_id: str, **changes: Any) -> Operation:
    op = _locked(operation_id)
    op.metadata = {**(op.metadata or {}), **changes}
    _store_own_lines(op)
    op.save(update_fields=["metadata", "logs_cursor", "updated_at"])
    _after_commit_invalidate(operation_id)
    return op


@transaction.atomic
def operation_attach_remote(
    *, operation_id: str, agent: str, remote_operation_id: str
) -> Operation:
    """Record where a remote operation runs: the agent and the operation's id there.

    Set once, right after the agent accepted the start (clients keep using our id); attaching the
    same id again is a no-op, a different one is refused because the metrics cursor belongs to it.
    """
    op = _locked(operation_id)
    if op.remote_operation_id and op.remote_operation_id != remote_operation_id:
        raise IllegalTransition(
            operation_id, op.status, op.status, f"already runs as {op.remote_operation_id}"
        )
    op.executor = Executor.AGENT
    op.agent = agent
    op.remote_operation_id = remote_operation_id
    log_event(
        logger,
        logging.INFO,
        operation_id,
        "attached",
        "agent %s runs it as %s",
        agent,
        remote_operation_id,
    )
    _store_own_lines(op)
    op.save(update_fields=["executor", "agent", "remote_operation_id", "logs_cursor", "updated_at"])
    _after_commit_invalidate(operation_id)
    return op
