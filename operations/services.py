"""Every write to an operation goes through these functions (the status machine lives here).

Each service locks the row (`select_for_update`), checks the transition, writes, and invalidates
the read cache after commit. Terminal states are final: recording a pull on a terminal row, or
marking it interrupted or unreachable, leaves it as it is; any other change (complete, fail,
acknowledge a cancel, a cancel request) raises `IllegalTransition`, which callers racing to end
one operation catch — so the first outcome stands and is never overwritten.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from operations import cache as op_cache
from operations import metrics
from operations.bridge import ProgressBridge
from operations.exceptions import IllegalTransition, OperationNotFound
from operations.instance import current_instance_id
from operations.models import (
    Executor,
    Operation,
    OperationMetric,
    OperationStatus,
    empty_progress,
    new_operation_id,
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
    if pull.snapshot is not None:
        progress = empty_progress()
        progress.update({k: v for k, v in pull.snapshot.items() if k in progress})
        op.progress = progress
    op.refreshed_at = timezone.now()


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
    op = Operation.objects.create(
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
    logger.info("operation %s created (%s, %s)", op.operation_id, operation_type, executor)
    return op


# --- lifecycle ----------------------------------------------------------------------------------
@transaction.atomic
def operation_start(*, operation_id: str) -> Operation:
    op = _locked(operation_id)
    _transition(op, S.RUNNING)
    op.started_at = timezone.now()
    op.save()
    _after_commit_invalidate(operation_id)
    kind = op.operation_type
    transaction.on_commit(lambda: metrics.OPERATION_STARTS.labels(kind).inc())
    logger.info("operation %s started", operation_id)
    return op


@transaction.atomic
def operation_record_pull(*, operation_id: str, pull: Pull) -> Operation:
    """Save what a reader pulled. A terminal row is returned unchanged (final state)."""
    op = _locked(operation_id)
    if op.is_terminal:
        return op
    _apply_pull(op, pull)
    if op.unreachable_since is not None:
        op.unreachable_since = None
    op.save()
    return op


def _finish(
    op: Operation,
    target: str,
    *,
    pull: Pull | None,
    result_summary: dict[str, Any] | None = None,
    error_message: str = "",
) -> Operation:
    _apply_pull(op, pull)
    _transition(op, target)
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
    _after_commit_invalidate(op.operation_id)
    kind = op.operation_type
    transaction.on_commit(lambda: metrics.OPERATION_ENDS.labels(kind, target).inc())
    return op


@transaction.atomic
def operation_complete(
    *, operation_id: str, result_summary: dict[str, Any], pull: Pull | None = None
) -> Operation:
    op = _locked(operation_id)
    if op.status == S.CANCELLING:
        # The work ended before it saw the cancel: it completed, and says so.
        result_summary = {**result_summary, "cancel_not_needed": True}
    op = _finish(op, S.COMPLETED, pull=pull, result_summary=result_summary)
    logger.info("operation %s completed", operation_id)
    return op


@transaction.atomic
def operation_fail(
    *,
    operation_id: str,
    error_message: str,
    partial_result: dict[str, Any] | None = None,
    pull: Pull | None = None,
) -> Operation:
    op = _locked(operation_id)
    op = _finish(
        op, S.FAILED, pull=pull, result_summary=partial_result, error_message=error_message
    )
    logger.warning("operation %s failed: %s", operation_id, error_message)
    return op


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
    op.save()
    _after_commit_invalidate(operation_id)
    kind = op.operation_type
    transaction.on_commit(lambda: metrics.CANCEL_REQUESTS.labels(kind).inc())
    if op.status == S.CANCELLED:
        transaction.on_commit(lambda: metrics.OPERATION_ENDS.labels(kind, S.CANCELLED).inc())
    logger.info("operation %s: cancel requested (%s)", operation_id, reason)
    return op


@transaction.atomic
def operation_acknowledge_cancel(
    *,
    operation_id: str,
    stop_point: str,
    partial_result: dict[str, Any] | None = None,
    pull: Pull | None = None,
) -> Operation:
    op = _locked(operation_id)
    if op.cancel_requested_at is None:
        op.cancel_requested_at = timezone.now()
    op.cancel_acknowledged_at = timezone.now()
    summary = {**(partial_result or {}), "stopped_at": stop_point}
    op = _finish(op, S.CANCELLED, pull=pull, result_summary=summary)
    logger.info("operation %s cancelled at %s", operation_id, stop_point)
    return op


@transaction.atomic
def operation_mark_interrupted(*, operation_id: str, reason: str) -> Operation:
    """End an operation whose worker is gone. A row that already ended is left as it is."""
    op = _locked(operation_id)
    if op.is_terminal:
        return op
    op = _finish(op, S.FAILED, pull=None, error_message=f"interrupted: {reason}")
    logger.warning("operation %s interrupted: %s", operation_id, reason)
    return op


@transaction.atomic
def operation_mark_unreachable(*, operation_id: str, error: str) -> Operation:
    """Record that the place running the operation did not answer; status is kept."""
    op = _locked(operation_id)
    if op.is_terminal:
        return op
    if op.unreachable_since is None:
        op.unreachable_since = timezone.now()
    metadata = dict(op.metadata or {})
    metadata["last_refresh_error"] = error[:500]
    op.metadata = metadata
    op.save(update_fields=["unreachable_since", "metadata", "updated_at"])
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
    op.save(update_fields=["metadata", "updated_at"])
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
    op.save(update_fields=["executor", "agent", "remote_operation_id", "updated_at"])
    _after_commit_invalidate(operation_id)
    logger.info("operation %s runs on agent %s as %s", operation_id, agent, remote_operation_id)
    return op
