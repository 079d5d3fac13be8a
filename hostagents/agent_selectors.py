"""Reads only an agent serves: one refresh for the backend, the operation and its new metric
records in one answer (`GET /api/v1/operations/{id}/refresh/`, docs/agents.md).

It reads what the two endpoints it replaces read — the operation through the one read path
(`operations.selectors.operation_get`, TTL-cached) and the records with `seq ≥ cursor` — so its
answer is theirs (a contract test holds them equal). What it avoids is a database query per
request: while the run is registered here, the records come from its bridge. On an agent every
operation is a local run whose source cursor and ours advance together (a pull stores the bridge's
records `[remote_metrics_cursor:]` under the seqs from `metrics_cursor`), so bridge record `i` is
stored as seq `i`. Only records the operation answered has already stored are served (`seq <
metrics_cursor`), so the records never run ahead of the operation they come with. When that
cannot be relied on (the run is gone, the two cursors differ, a record carries a timestamp that
is not a number), the records are read from the database, exactly as the metrics endpoint does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from operations import selectors
from operations.exceptions import InvalidInput
from operations.local import local_runs
from operations.models import Operation, OperationMetric

# The fields of a stored record that are not its payload (`OperationMetric.as_record`).
_RECORD_KEYS = frozenset({"seq", "kind", "recorded_at"})


# Log lines one refresh answer carries at most (the backend asks again from where it got to).
REFRESH_LOG_PAGE = 500


@dataclass(frozen=True)
class RefreshPage:
    operation: Operation
    records: list[dict[str, Any]]
    new_cursor: int
    # None when the backend did not ask for log lines (it sent no `log_cursor`).
    logs: selectors.LogsPage | None = None


def agent_refresh(
    *,
    operation_id: str,
    cursor: int = 0,
    limit: int = selectors.MAX_METRICS_LIMIT,
    log_cursor: int | None = None,
) -> RefreshPage:
    """The operation (at most one TTL old) and at most `limit` of its records with seq ≥ cursor,
    oldest first; `new_cursor` is the last seq + 1, or `cursor` when nothing is new. With a
    `log_cursor`, also its stored log lines from there (at most `REFRESH_LOG_PAGE`, bounded by
    the answered operation's own `logs_cursor`)."""
    if not 0 <= cursor <= selectors.MAX_CURSOR:
        raise InvalidInput(f"cursor must be between 0 and {selectors.MAX_CURSOR}", field="cursor")
    if not 1 <= limit <= selectors.MAX_METRICS_LIMIT:
        raise InvalidInput(
            f"limit must be between 1 and {selectors.MAX_METRICS_LIMIT}", field="limit"
        )
    op = selectors.operation_get(operation_id=operation_id)
    records = _bridge_records(op, cursor, limit)
    if records is None:
        rows = OperationMetric.objects.filter(operation_id=op.pk, seq__gte=cursor).order_by("seq")
        records = [m.as_record() for m in rows[:limit]]
    new_cursor = records[-1]["seq"] + 1 if records else cursor
    logs = None
    if log_cursor is not None:
        if not 0 <= log_cursor <= selectors.MAX_CURSOR:
            raise InvalidInput(
                f"log_cursor must be between 0 and {selectors.MAX_CURSOR}", field="log_cursor"
            )
        logs = selectors.operation_new_logs(operation=op, cursor=log_cursor, limit=REFRESH_LOG_PAGE)
    return RefreshPage(operation=op, records=records, new_cursor=new_cursor, logs=logs)


def _bridge_records(op: Operation, cursor: int, limit: int) -> list[dict[str, Any]] | None:
    """The stored records `[cursor, metrics_cursor)` as the database would give them, read from
    the run's bridge; None where the bridge cannot say (read the database instead)."""
    run = local_runs.get(op.operation_id)
    if run is None or op.metrics_cursor != op.remote_metrics_cursor:
        return None
    end = min(op.metrics_cursor, cursor + limit)
    if cursor >= end:
        return []
    raw, _ = run.bridge.metrics_since(cursor)
    if len(raw) < end - cursor:
        return None
    records = []
    for seq, record in enumerate(raw[: end - cursor], start=cursor):
        at = record.get("recorded_at")
        if isinstance(at, bool) or not isinstance(at, (int, float)):
            return None  # stored through a conversion this does not repeat: ask the database
        rendered = {k: v for k, v in record.items() if k not in _RECORD_KEYS}
        # As `services._apply_pull` stores it and `OperationMetric.as_record` reads it back.
        rendered["seq"] = seq
        rendered["kind"] = str(record.get("kind", "metric"))[:32]
        rendered["recorded_at"] = datetime.fromtimestamp(at, tz=UTC).isoformat()
        records.append(rendered)
    return records
