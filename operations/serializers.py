"""The one definition of the operations API shapes (docs/architecture.md §10).

Used to render API answers on the backend and on agents, and by `AgentClient` to validate what an
agent sent back: a shape change shows up in both places at once (the contract test checks it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.utils import timezone
from rest_framework import serializers

from operations.conf import ktrdr_setting
from operations.models import Operation, OperationStatus, empty_progress
from operations.oplog import MAX_EVENT_CHARS, MAX_LINE_CHARS, MAX_SOURCE_CHARS


class ProgressSerializer(serializers.Serializer):
    percentage = serializers.FloatField(min_value=0.0, max_value=100.0)
    message = serializers.CharField(allow_blank=True)
    phase = serializers.CharField(allow_blank=True)
    steps_completed = serializers.IntegerField(min_value=0)
    steps_total = serializers.IntegerField(min_value=0)
    items_processed = serializers.IntegerField(min_value=0)
    items_total = serializers.IntegerField(min_value=0)
    context = serializers.DictField()
    eta_seconds = serializers.FloatField(allow_null=True, min_value=0.0)


class LocationSerializer(serializers.Serializer):
    executor = serializers.ChoiceField(choices=["local", "agent"])
    agent = serializers.CharField(allow_blank=True)
    remote_operation_id = serializers.CharField(allow_blank=True)


class CancelSerializer(serializers.Serializer):
    requested_at = serializers.DateTimeField(allow_null=True)
    acknowledged_at = serializers.DateTimeField(allow_null=True)
    reason = serializers.CharField(allow_blank=True)


class FreshnessSerializer(serializers.Serializer):
    refreshed_at = serializers.DateTimeField(allow_null=True)
    age_seconds = serializers.FloatField(allow_null=True)
    stale = serializers.BooleanField()
    unreachable_since = serializers.DateTimeField(allow_null=True)


class OperationSerializer(serializers.Serializer):
    operation_id = serializers.CharField(max_length=96)
    operation_type = serializers.CharField(max_length=40)
    status = serializers.ChoiceField(choices=OperationStatus.choices)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    updated_at = serializers.DateTimeField()
    progress = ProgressSerializer()
    metadata = serializers.DictField()
    result_summary = serializers.JSONField(allow_null=True)
    error_message = serializers.CharField(allow_blank=True)
    location = LocationSerializer()
    cancel = CancelSerializer()
    freshness = FreshnessSerializer()


class OperationListSerializer(serializers.Serializer):
    operations = OperationSerializer(many=True)
    total = serializers.IntegerField(min_value=0)
    active_count = serializers.IntegerField(min_value=0)


class MetricRecordSerializer(serializers.Serializer):
    """Common fields of a metric record; the kind-specific fields pass through unchanged."""

    seq = serializers.IntegerField(min_value=0)
    kind = serializers.CharField(max_length=32)
    recorded_at = serializers.DateTimeField()

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        base = super().to_internal_value(data)
        extra = {k: v for k, v in data.items() if k not in base}
        return {**extra, **base}

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return dict(instance)


class MetricsPageSerializer(serializers.Serializer):
    metrics = MetricRecordSerializer(many=True)
    new_cursor = serializers.IntegerField(min_value=0)


class LogLineSerializer(serializers.Serializer):
    """One line of an operation's log (docs/logs-and-retention.md)."""

    seq = serializers.IntegerField(min_value=0)
    logged_at = serializers.DateTimeField()
    level = serializers.ChoiceField(choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])
    source = serializers.CharField(
        allow_blank=True,
        max_length=MAX_SOURCE_CHARS,
        help_text="where it was logged: empty for the answering process, else the agent's name",
    )
    event = serializers.CharField(allow_blank=True, max_length=MAX_EVENT_CHARS)
    message = serializers.CharField(
        allow_blank=True, max_length=MAX_LINE_CHARS, trim_whitespace=False
    )


class LogsPageSerializer(serializers.Serializer):
    logs = LogLineSerializer(many=True)
    new_cursor = serializers.IntegerField(
        min_value=0, help_text="the cursor to ask with next (last seq + 1, or the same)"
    )
    first_seq = serializers.IntegerField(
        min_value=0, help_text="the oldest seq still stored (older lines were dropped)"
    )


class CancelRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class CountdownStartSerializer(serializers.Serializer):
    steps = serializers.IntegerField(min_value=1, max_value=100_000, default=10)
    step_seconds = serializers.FloatField(min_value=0.0, max_value=60.0, default=0.5)
    fail_at = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None)


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField()


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


def stale_after_seconds() -> float:
    """A live snapshot older than this is reported stale: its owner refreshes it every TTL, so
    several missed windows mean nobody can pull it (`docs/architecture.md` §5)."""
    return max(5.0 * float(ktrdr_setting("OPERATIONS_CACHE_TTL")), 5.0)


def is_stale(op: Operation) -> bool:
    if op.is_terminal:
        return False
    if op.unreachable_since is not None:
        return True
    age = op.snapshot_age_seconds
    return op.status != OperationStatus.PENDING and age is not None and age > stale_after_seconds()


def _same(value: Any) -> Any:
    return value


def _shaped(op: Operation, progress: dict[str, Any], when: Callable[[Any], Any]) -> dict[str, Any]:
    """The operation in the API's shape, its datetimes passed through `when`."""
    age = op.snapshot_age_seconds
    return {
        "operation_id": op.operation_id,
        "operation_type": op.operation_type,
        "status": op.status,
        "created_at": when(op.created_at),
        "started_at": when(op.started_at),
        "completed_at": when(op.completed_at),
        "updated_at": when(op.updated_at),
        "progress": progress,
        "metadata": dict(op.metadata or {}),
        "result_summary": op.result_summary,
        "error_message": op.error_message,
        "location": {
            "executor": op.executor,
            "agent": op.agent,
            "remote_operation_id": op.remote_operation_id,
        },
        "cancel": {
            "requested_at": when(op.cancel_requested_at),
            "acknowledged_at": when(op.cancel_acknowledged_at),
            "reason": op.cancel_reason,
        },
        "freshness": {
            "refreshed_at": when(op.refreshed_at),
            "age_seconds": None if age is None else round(age, 3),
            "stale": is_stale(op),
            "unreachable_since": when(op.unreachable_since),
        },
    }


def operation_payload(op: Operation) -> dict[str, Any]:
    """The operation as the API shows it (a plain dict the serializer renders)."""
    progress = empty_progress()
    progress.update({k: v for k, v in (op.progress or {}).items() if k in progress})
    if progress["eta_seconds"] is not None and op.is_terminal:
        progress["eta_seconds"] = None
    return _shaped(op, progress, _same)


_DATETIME = serializers.DateTimeField()
_PROGRESS_COUNTS = ("steps_completed", "steps_total", "items_processed", "items_total")


def _dt(value: Any, zone: Any = None) -> str | None:
    """What `DateTimeField().to_representation` gives (ISO 8601 in the current zone, "Z" for
    UTC), without its settings lookups for the aware datetimes the database hands back (eight
    per operation, on every API answer and agent refresh); anything else goes through DRF."""
    if value is None:
        return None
    if not isinstance(value, datetime) or value.utcoffset() is None:
        return _DATETIME.to_representation(value)
    text = value.astimezone(zone or timezone.get_current_timezone()).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _number(value: Any, kind: type, default: Any) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        return default


def serialize_operation(op: Operation) -> dict[str, Any]:
    """The JSON-ready operation, exactly what `OperationSerializer(operation_payload(op)).data`
    gives (a test holds them equal, state by state) without building a nested DRF serializer
    per answer — that cost ~1.5 ms, most of a cache-hit API answer and of every agent refresh —
    and in one pass over the row (one time-zone lookup, no intermediate payload)."""
    zone = timezone.get_current_timezone()
    raw = op.progress or {}
    eta = None if op.is_terminal else raw.get("eta_seconds")
    progress = {
        "percentage": _number(raw.get("percentage", 0.0), float, 0.0),
        "message": str(raw.get("message") or ""),
        "phase": str(raw.get("phase") or ""),
        **{key: _number(raw.get(key, 0), int, 0) for key in _PROGRESS_COUNTS},
        "context": dict(raw.get("context") or {}),
        "eta_seconds": None if eta is None else _number(eta, float, None),
    }
    return _shaped(op, progress, lambda value: _dt(value, zone))
