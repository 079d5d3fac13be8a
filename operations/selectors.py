"""Every read of an operation goes through here — the one TTL-cached pull path.

`operation_get` serves a cached snapshot while it is younger than `KTRDR_OPERATIONS_CACHE_TTL`;
past that (or with `force_refresh`) and only for a non-terminal operation, it pulls from the
operation's place (`operations.places`: this process's bridge, an agent) under a single-flight
lock, persists what it saw, and caches the result. Readers that lose the lock race wait briefly
for that pull instead of queueing a second one. Work owned by another process on this host is
served as its owner last stored it, cached only as long as that snapshot is younger than the TTL
(so the owner's own refresh is never skipped for a copy of its old row). Lists read the
database only.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from operations import cache as op_cache
from operations import metrics, places, services
from operations.conf import ktrdr_setting
from operations.exceptions import InvalidInput, OperationNotFound
from operations.models import (
    ACTIVE_STATUSES,
    Executor,
    Operation,
    OperationLog,
    OperationMetric,
    OperationStatus,
)
from operations.oplog import log_event
from operations.outages import describe

logger = logging.getLogger(__name__)

MAX_LIST_LIMIT = 500
MAX_METRICS_LIMIT = 5000
# Far past any real list, and well inside the database's 64-bit integers.
MAX_OFFSET = 1_000_000_000
MAX_SEARCH = 100
MAX_CURSOR = 2**31 - 1
MAX_LOGS_LIMIT = 1000
# How long a reader that finds a refresh in flight waits for its result before serving the row.
INFLIGHT_WAIT_SECONDS = 1.0


def cache_ttl() -> float:
    return float(ktrdr_setting("OPERATIONS_CACHE_TTL"))


def _load(operation_id: str) -> Operation:
    try:
        return Operation.objects.get(operation_id=operation_id)
    except Operation.DoesNotExist:
        raise OperationNotFound(operation_id) from None


def _refresh(op: Operation, *, ttl: float, force: bool) -> tuple[Operation, bool]:
    """Pull from the place unless another reader just did (or is doing) it.

    Returns the row and whether what it holds was pulled now (so may be cached as fresh)."""
    if not force and op.refreshed_at is not None:
        # Another process refreshed within the window (its cache entry may have expired).
        age = time.time() - op.refreshed_at.timestamp()
        if age < ttl:
            return op, False
    place = places.place_for(op)
    if place is None:
        return op, False
    if not place.pulls:
        return place.refresh(op), False
    asked_at = time.time()
    token = op_cache.try_lock(op.operation_id)
    if token is None:
        # Single flight: another reader (maybe in another process) is pulling right now. Wait
        # briefly for what it pulls rather than pull again; if it takes long, serve the row.
        return _await_inflight(op, since=asked_at), False
    observer = metrics.refresh_observer
    started = observer.start()
    ok = False
    try:
        refreshed = place.refresh(op)
        ok = True
        log_event(
            logger,
            logging.DEBUG,
            op.operation_id,
            "refresh",
            "pulled from %s in %.1f ms",
            place.name,
            (time.time() - asked_at) * 1000,
            capture=False,
        )
        return refreshed, True
    except OperationNotFound:
        raise
    except Exception as exc:
        logger.exception(
            "%s refresh_failed: serving the last snapshot",
            op.operation_id,
            extra={"operation_id": op.operation_id, "event": "refresh_failed"},
        )
        return _mark_stale(op, f"refreshing it failed: {type(exc).__name__}: {exc}"), False
    finally:
        op_cache.unlock(op.operation_id, token)
        # A place that answers without error may still say the agent did not answer (it marks
        # the row unreachable rather than raising): that is an error for the figures too.
        ok = ok and refreshed.unreachable_since is None
        observer.done(
            operation_id=op.operation_id, place=_place_label(op, place), started=started, ok=ok
        )


def _place_label(op: Operation, place: places.ExecutionPlace) -> str:
    """A bounded label for the metrics: local (a bridge), gone, or the remote executor."""
    if place is places.THIS_PROCESS:
        return "local"
    if place is places.GONE:
        return "gone"
    return str(op.executor)


def _mark_stale(op: Operation, error: str) -> Operation:
    """The last stored snapshot, said to be stale (on the row if the database takes the write)."""
    try:
        return services.operation_mark_unreachable(operation_id=op.operation_id, error=error)
    except OperationNotFound:
        raise
    except Exception:
        logger.warning("%s stale_not_recorded: saying so in this answer only", op.operation_id)
        try:
            op = _load(op.operation_id)
        except OperationNotFound:
            raise
        except Exception:
            logger.warning("%s reload_failed: serving what this read loaded", op.operation_id)
        if op.unreachable_since is None:
            op.unreachable_since = timezone.now()
        return op


def _await_inflight(op: Operation, *, since: float) -> Operation:
    deadline = time.monotonic() + INFLIGHT_WAIT_SECONDS
    while time.monotonic() < deadline:
        entry = op_cache.get_entry(op.operation_id)
        if entry is not None and entry[0] >= since:
            return entry[1]
        time.sleep(0.01)
    return op


def operation_get(*, operation_id: str, force_refresh: bool = False) -> Operation:
    """The operation with a snapshot at most one TTL old (terminal ones are never refreshed)."""
    ttl = cache_ttl()
    if not force_refresh:
        entry = op_cache.get_entry(operation_id)
        if entry is not None:
            stamp, cached = entry
            age = time.time() - stamp
            if cached.is_terminal or age < ttl:
                metrics.READ_HITS.inc()
                log_event(
                    logger,
                    logging.DEBUG,
                    operation_id,
                    "cache_hit",
                    "entry %.3f s old",
                    age,
                    capture=False,
                )
                return cached
            log_event(
                logger,
                logging.DEBUG,
                operation_id,
                "cache_miss",
                "entry %.3f s old",
                age,
                capture=False,
            )
        else:
            log_event(logger, logging.DEBUG, operation_id, "cache_miss", "no entry", capture=False)
    metrics.READ_MISSES.inc()
    op = _load(operation_id)
    pulled = True
    if not op.is_terminal:
        op, pulled = _refresh(op, ttl=ttl, force=force_refresh)
    if pulled or op.is_terminal:
        op_cache.put(op, ttl)
    elif op.refreshed_at is not None:
        # Not pulled by this read: valid only as long as the snapshot itself is young.
        op_cache.put(op, ttl, stamp=op.refreshed_at.timestamp())
    return op


@dataclass(frozen=True)
class OperationPage:
    operations: list[Operation]
    total: int
    active_count: int
    # False when `total` is a floor (`count_limit` reached): "more than `total`".
    total_is_exact: bool = True


def _parse_status(status: str | None) -> list[str]:
    if not status:
        return []
    values = [s.strip() for s in status.split(",") if s.strip()]
    unknown = [v for v in values if v not in OperationStatus.values]
    if unknown:
        raise InvalidInput(
            f"unknown status {', '.join(unknown)}; use one of {', '.join(OperationStatus.values)}",
            field="status",
        )
    return values


def operation_list(
    *,
    status: str | None = None,
    operation_type: str | None = None,
    active_only: bool = False,
    search: str | None = None,
    limit: int = 50,
    offset: int = 0,
    live: bool = False,
    count_limit: int | None = None,
) -> OperationPage:
    """Newest first, from the database. Completed operations stay listed.

    `live`: the page's active operations come through `operation_get` (a snapshot at most one
    TTL old, pulled from their place when older) instead of as the database holds them.
    `count_limit`: count at most that many (a page's cost then does not grow with the table);
    `total_is_exact` says whether the total was reached."""
    if limit < 1 or limit > MAX_LIST_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIST_LIMIT}", field="limit")
    if not 0 <= offset <= MAX_OFFSET:
        raise InvalidInput(f"offset must be between 0 and {MAX_OFFSET}", field="offset")
    qs = Operation.objects.all()
    statuses = _parse_status(status)
    if statuses:
        qs = qs.filter(status__in=statuses)
    if active_only:
        qs = qs.filter(status__in=ACTIVE_STATUSES)
    if operation_type:
        qs = qs.filter(operation_type=operation_type)
    if search and len(search) > MAX_SEARCH:
        raise InvalidInput(f"search is at most {MAX_SEARCH} characters", field="search")
    if search:
        qs = qs.filter(Q(operation_id__icontains=search) | Q(strategy_name__icontains=search))
    rows = list(qs.order_by("-created_at", "-id")[offset : offset + limit])
    if count_limit is None:
        total, exact = qs.count(), True
    elif offset == 0 and len(rows) < limit:
        total, exact = len(rows), True
    else:
        counted = qs.order_by()[: count_limit + 1].count()
        total, exact = min(counted, count_limit), counted <= count_limit
    if live:
        rows = [operation_get(operation_id=op.operation_id) if op.is_active else op for op in rows]
    else:
        rows = [_interrupt_if_orphaned(op) for op in rows]
    active_count = Operation.objects.filter(status__in=ACTIVE_STATUSES).count()
    return OperationPage(
        operations=rows, total=total, active_count=active_count, total_is_exact=exact
    )


def _interrupt_if_orphaned(op: Operation) -> Operation:
    """A listed local operation whose worker is gone is ended the first time anyone sees it."""
    orphaned = (
        op.is_active and op.executor == Executor.LOCAL and places.local_place_for(op) is places.GONE
    )
    if orphaned:
        return operation_get(operation_id=op.operation_id, force_refresh=True)
    return op


def active_operations_count() -> int:
    return Operation.objects.filter(status__in=ACTIVE_STATUSES).count()


@dataclass(frozen=True)
class MetricsPage:
    records: list[dict]
    new_cursor: int


def operation_metrics_stored(*, operation_id: str, below: int) -> int:
    """How many of the records seq 0, 1, 2… below `below` are stored without a gap (what a
    resume can copy: a run killed between two pulls stored fewer than it produced)."""
    seqs = OperationMetric.objects.filter(
        operation__operation_id=operation_id, seq__lt=below
    ).order_by("seq")
    count = 0
    for seq in seqs.values_list("seq", flat=True).iterator():
        if seq != count:
            break
        count += 1
    return count


def operation_metrics(
    *, operation_id: str, cursor: int = 0, limit: int | None = None, kind: str | None = None
) -> MetricsPage:
    """Metric records with seq ≥ cursor, oldest first; refreshes through `operation_get`."""
    if not 0 <= cursor <= MAX_CURSOR:
        raise InvalidInput(f"cursor must be between 0 and {MAX_CURSOR}", field="cursor")
    if limit is not None and (limit < 1 or limit > MAX_METRICS_LIMIT):
        raise InvalidInput(f"limit must be between 1 and {MAX_METRICS_LIMIT}", field="limit")
    op = operation_get(operation_id=operation_id)
    qs = OperationMetric.objects.filter(operation_id=op.pk, seq__gte=cursor).order_by("seq")
    if kind:
        qs = qs.filter(kind=kind)
    if limit is not None:
        qs = qs[:limit]
    records = _records(qs)
    new_cursor = records[-1]["seq"] + 1 if records else cursor
    return MetricsPage(records=records, new_cursor=new_cursor)


def _records(qs) -> list[dict]:
    """The API shape of each metric row (`OperationMetric.as_record`), without building models."""
    return [
        {**payload, "seq": seq, "kind": kind, "recorded_at": recorded_at.isoformat()}
        for payload, seq, kind, recorded_at in qs.values_list(
            "payload", "seq", "kind", "recorded_at"
        )
    ]


def operation_all_metrics(*, operation: Operation, kind: str | None = None) -> list[dict]:
    """Every stored record of an operation (exports, the `ops` command); no refresh."""
    qs = OperationMetric.objects.filter(operation_id=operation.pk).order_by("seq")
    if kind:
        qs = qs.filter(kind=kind)
    return _records(qs)


def operation_recent_metrics(
    *, operation: Operation, before: int, last: int, kind: str | None = None
) -> list[dict]:
    """The last `last` records with seq < `before`, oldest first (a page's history): the cost
    of a page follows what it shows, not how many records the operation holds."""
    qs = OperationMetric.objects.filter(operation_id=operation.pk, seq__lt=before)
    if kind:
        qs = qs.filter(kind=kind)
    rows = _records(qs.order_by("-seq")[:last])
    rows.reverse()
    return rows


def operation_new_metrics(*, operation: Operation, cursor: int, limit: int) -> MetricsPage:
    """What a viewer at `cursor` lacks: records with `cursor` ≤ seq < the snapshot's own cursor,
    at most `limit` (the snapshot's cursor bounds it, so a page never shows records its
    operation's state does not account for yet)."""
    end = min(operation.metrics_cursor, cursor + limit)
    if cursor >= end:
        return MetricsPage(records=[], new_cursor=min(cursor, operation.metrics_cursor))
    # The records the snapshot's own pull stored travel with it (services._apply_pull).
    first, recent = getattr(operation, "recent_metrics", None) or (0, [])
    if recent and first <= cursor and end <= first + len(recent):
        return MetricsPage(records=recent[cursor - first : end - first], new_cursor=end)
    qs = OperationMetric.objects.filter(
        operation_id=operation.pk, seq__gte=cursor, seq__lt=end
    ).order_by("seq")
    return MetricsPage(records=_records(qs), new_cursor=end)


def dependency_checks() -> dict[str, dict[str, Any]]:
    """Whether the database and the cache answer now: `{"database": {"ok": True, "error": ""},
    "cache": {...}}` (errors in one line, as `operations.outages.describe` says them)."""
    checks: dict[str, dict[str, Any]] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        checks["database"] = {"ok": True, "error": ""}
    except Exception as exc:
        checks["database"] = {"ok": False, "error": describe(exc)}
    try:
        key = f"ktrdr:health:{uuid.uuid4().hex}"
        cache.set(key, 1, 5)
        ok = cache.get(key) == 1
        cache.delete(key)
        checks["cache"] = {"ok": ok, "error": "" if ok else "the cache did not keep a value"}
    except Exception as exc:
        checks["cache"] = {"ok": False, "error": describe(exc)}
    return checks


# --- log lines --------------------------------------------------------------------------------
@dataclass(frozen=True)
class LogsPage:
    lines: list[dict]
    new_cursor: int
    # The lowest seq still stored (older ones were dropped past KTRDR_OPERATION_LOG_MAX_LINES).
    first_seq: int = 0


def _lines(qs) -> list[dict]:
    return [
        {
            "seq": seq,
            "logged_at": logged_at.isoformat(),
            "level": level,
            "source": source,
            "event": event,
            "message": message,
        }
        for seq, logged_at, level, source, event, message in qs.values_list(
            "seq", "logged_at", "level", "source", "event", "message"
        )
    ]


def operation_logs(*, operation_id: str, cursor: int = 0, limit: int = 200) -> LogsPage:
    """Log lines with seq ≥ cursor, oldest first, at most `limit`; refreshes through
    `operation_get` first, so a remote operation's new lines are pulled from its agent."""
    if not 0 <= cursor <= MAX_CURSOR:
        raise InvalidInput(f"cursor must be between 0 and {MAX_CURSOR}", field="cursor")
    if not 1 <= limit <= MAX_LOGS_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LOGS_LIMIT}", field="limit")
    op = operation_get(operation_id=operation_id)
    return operation_new_logs(operation=op, cursor=cursor, limit=limit)


def operation_new_logs(*, operation: Operation, cursor: int, limit: int) -> LogsPage:
    """What a reader at `cursor` lacks, from the database, bounded by the row's own
    `logs_cursor` (no refresh: the caller read the operation)."""
    first = max(operation.logs_cursor - int(ktrdr_setting("OPERATION_LOG_MAX_LINES")), 0)
    # Lines before `first` were dropped (the newest N are kept): a reader that far behind
    # continues from the oldest kept one.
    cursor = max(cursor, first) if cursor < operation.logs_cursor else cursor
    end = min(operation.logs_cursor, cursor + limit)
    if cursor >= end:
        return LogsPage(lines=[], new_cursor=min(cursor, operation.logs_cursor), first_seq=first)
    qs = OperationLog.objects.filter(
        operation_id=operation.pk, seq__gte=cursor, seq__lt=end
    ).order_by("seq")
    lines = _lines(qs[:limit])
    new_cursor = lines[-1]["seq"] + 1 if lines else end
    return LogsPage(lines=lines, new_cursor=new_cursor, first_seq=first)


def operation_recent_logs(*, operation: Operation, before: int, last: int) -> list[dict]:
    """The last `last` lines with seq < `before`, oldest first (a page's history)."""
    qs = OperationLog.objects.filter(operation_id=operation.pk, seq__lt=before).order_by("-seq")
    rows = _lines(qs[:last])
    rows.reverse()
    return rows
