"""Parsing what an agent sent back, with the serializers the API renders with
(docs/architecture.md §10).

The upstream project lost its metrics for months to a cursor-shape mismatch between host and
backend; here the agent renders with `operations.serializers` and the backend parses with the same
classes, so a shape change breaks both sides (and the contract test) at once. Any answer that does
not validate raises `AgentProtocolError` naming the agent and the fields — never a 500.

Validation runs on one bound instance per serializer class (`run_validation`, which is what
`is_valid()` runs): a new instance deep-copies every declared field, nested ones included, which
cost ~1.4 ms per operation parsed — most of the backend's side of a refresh. Validating holds no
state on the instance, so the instances are shared across threads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from rest_framework import serializers

from hostagents.errors import AgentProtocolError
from operations.serializers import (
    LogLineSerializer,
    LogsPageSerializer,
    MetricRecordSerializer,
    MetricsPageSerializer,
    OperationListSerializer,
    OperationSerializer,
)

_bound: dict[tuple[type[serializers.Serializer], bool], serializers.BaseSerializer] = {}
_bound_lock = threading.Lock()


def _plain(value: Any) -> Any:
    """OrderedDicts/ReturnDicts → plain dicts and lists, recursively."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _validator(
    serializer_class: type[serializers.Serializer], *, many: bool = False
) -> serializers.BaseSerializer:
    validator = _bound.get((serializer_class, many))
    if validator is None:
        with _bound_lock:
            made = serializer_class(many=True) if many else serializer_class()
            validator = _bound.setdefault((serializer_class, many), made)
    return validator


def _validate(
    serializer_class: type[serializers.Serializer], data: Any, what: str, agent: str
) -> dict[str, Any]:
    try:
        validated = _validator(serializer_class).run_validation(data)
    except serializers.ValidationError as exc:
        errors = _plain(exc.detail)
        raise AgentProtocolError(
            agent, f"{what} does not match the API contract: {errors}"
        ) from None
    return _plain(validated)


def _require_dict(data: Any, what: str, agent: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise AgentProtocolError(agent, f"{what} is not a JSON object: {type(data).__name__}")
    return data


def parse_operation(data: Any, *, agent: str) -> dict[str, Any]:
    data = _require_dict(data, "operation", agent)
    return _validate(OperationSerializer, data, "operation", agent)


def parse_operation_list(data: Any, *, agent: str) -> dict[str, Any]:
    data = _require_dict(data, "operation list", agent)
    return _validate(OperationListSerializer, data, "operation list", agent)


def _check_cursor(records: list[dict[str, Any]], new_cursor: int, cursor: int, agent: str) -> None:
    seqs = [r["seq"] for r in records]
    # The cursor contract: records at or past the cursor, in order, and a cursor past the last.
    if any(s < cursor for s in seqs) or seqs != sorted(seqs) or len(set(seqs)) != len(seqs):
        raise AgentProtocolError(agent, f"metrics page seqs {seqs[:10]} break the cursor {cursor}")
    if new_cursor < cursor or (seqs and new_cursor <= seqs[-1]):
        raise AgentProtocolError(
            agent, f"metrics page new_cursor {new_cursor} is behind its records/cursor {cursor}"
        )


def parse_metrics_page(data: Any, *, cursor: int, agent: str) -> tuple[list[dict[str, Any]], int]:
    data = _require_dict(data, "metrics page", agent)
    page = _validate(MetricsPageSerializer, data, "metrics page", agent)
    _check_cursor(page["metrics"], page["new_cursor"], cursor, agent)
    return page["metrics"], page["new_cursor"]


# Log lines one answer may carry: an agent's refresh sends at most REFRESH_LOG_PAGE (500), a logs
# page at most selectors.MAX_LOGS_LIMIT (1000); a longer list is a broken agent, refused whole.
MAX_LOG_LINES_PER_ANSWER = 1000


class RefreshPageSerializer(serializers.Serializer):
    """An agent's `GET operations/{id}/refresh/`: the operation and its metrics page in one
    answer, each in the shape of its own endpoint (`operations/{id}/`, `…/metrics/`), and, when
    asked with `log_cursor`, its log lines (`…/logs/`). Agents older than the logs answer
    without them."""

    operation = OperationSerializer()
    metrics = MetricRecordSerializer(many=True)
    new_cursor = serializers.IntegerField(min_value=0)
    logs = LogLineSerializer(many=True, required=False, max_length=MAX_LOG_LINES_PER_ANSWER)
    logs_new_cursor = serializers.IntegerField(min_value=0, required=False)


@dataclass(frozen=True)
class RefreshAnswer:
    """A parsed refresh: the operation, its new records and, if the agent sent them, log lines
    (`logs` None: an agent without logs in its refresh)."""

    operation: dict[str, Any]
    records: list[dict[str, Any]]
    new_cursor: int
    logs: list[dict[str, Any]] | None = None
    logs_cursor: int = 0


def _check_log_cursor(
    lines: list[dict[str, Any]], new_cursor: int, cursor: int, agent: str
) -> None:
    seqs = [line["seq"] for line in lines]
    if any(s < cursor for s in seqs) or seqs != sorted(seqs) or len(set(seqs)) != len(seqs):
        raise AgentProtocolError(agent, f"log page seqs {seqs[:10]} break the cursor {cursor}")
    if new_cursor < cursor or (seqs and new_cursor <= seqs[-1]):
        raise AgentProtocolError(
            agent, f"log page new_cursor {new_cursor} is behind its lines/cursor {cursor}"
        )


def parse_refresh_page(
    data: Any, *, cursor: int, agent: str, log_cursor: int | None = None
) -> RefreshAnswer:
    """A refresh answer, checked like the endpoints it joins."""
    data = _require_dict(data, "refresh", agent)
    page = _validate(RefreshPageSerializer, data, "refresh", agent)
    _check_cursor(page["metrics"], page["new_cursor"], cursor, agent)
    logs = page.get("logs")
    if logs is None or log_cursor is None:
        return RefreshAnswer(page["operation"], page["metrics"], page["new_cursor"])
    logs_cursor = page.get("logs_new_cursor")
    if logs_cursor is None:
        raise AgentProtocolError(agent, "refresh: logs without logs_new_cursor")
    _check_log_cursor(logs, logs_cursor, log_cursor, agent)
    return RefreshAnswer(page["operation"], page["metrics"], page["new_cursor"], logs, logs_cursor)


class _LogsAnswerSerializer(LogsPageSerializer):
    logs = LogLineSerializer(many=True, max_length=MAX_LOG_LINES_PER_ANSWER)


def parse_logs_page(data: Any, *, cursor: int, agent: str) -> tuple[list[dict[str, Any]], int]:
    """An agent's `GET operations/{id}/logs/` answer: (lines, new_cursor), checked."""
    data = _require_dict(data, "logs page", agent)
    page = _validate(_LogsAnswerSerializer, data, "logs page", agent)
    _check_log_cursor(page["logs"], page["new_cursor"], cursor, agent)
    return page["logs"], page["new_cursor"]


class ArtifactManifestSerializer(serializers.Serializer):
    name = serializers.RegexField(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
    size = serializers.IntegerField(min_value=0)
    sha256 = serializers.RegexField(r"^[0-9a-f]{64}$")


class ResultsSerializer(serializers.Serializer):
    operation_id = serializers.CharField(max_length=96)
    status = serializers.CharField(max_length=16)
    result_summary = serializers.JSONField(allow_null=True)
    error_message = serializers.CharField(allow_blank=True)


def parse_results(data: Any, *, agent: str) -> dict[str, Any]:
    data = _require_dict(data, "results", agent)
    results = _validate(ResultsSerializer, data, "results", agent)
    summary = results.get("result_summary")
    if summary is not None and not isinstance(summary, dict):
        raise AgentProtocolError(agent, "results: result_summary is not an object")
    return results


def parse_artifact_manifest(summary: dict[str, Any] | None, *, agent: str) -> list[dict[str, Any]]:
    """The `artifacts` list of a result summary (what the backend must fetch), validated."""
    raw = (summary or {}).get("artifacts") or []
    if not isinstance(raw, list):
        raise AgentProtocolError(agent, "result_summary.artifacts is not a list")
    try:
        manifest = _plain(_validator(ArtifactManifestSerializer, many=True).run_validation(raw))
    except serializers.ValidationError as exc:
        raise AgentProtocolError(
            agent, f"result_summary.artifacts does not match the contract: {_plain(exc.detail)}"
        ) from None
    names = [m["name"] for m in manifest]
    if len(set(names)) != len(names):
        raise AgentProtocolError(agent, f"result_summary.artifacts repeats names: {names}")
    return manifest


class GpuSerializer(serializers.Serializer):
    available = serializers.BooleanField()
    device_name = serializers.CharField(allow_blank=True, allow_null=True)
    device_count = serializers.IntegerField(min_value=0)
    # True while the agent's background GPU probe has not finished (health never waits on it).
    probing = serializers.BooleanField(required=False, default=False)


class HealthSerializer(serializers.Serializer):
    """GET /api/v1/health, on agents and on the backend."""

    status = serializers.ChoiceField(choices=["ok", "degraded"])
    role = serializers.ChoiceField(choices=["backend", "agent"])
    name = serializers.CharField(allow_blank=True)
    version = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())
    capabilities = serializers.ListField(child=serializers.CharField())
    gpu = GpuSerializer()
    running_operations = serializers.ListField(child=serializers.DictField())
    running_count = serializers.IntegerField(min_value=0)
    served = serializers.DictField(child=serializers.IntegerField(), required=False)
    checks = serializers.DictField(child=serializers.DictField(), required=False)


def parse_health(data: Any, *, agent: str) -> dict[str, Any]:
    data = _require_dict(data, "health", agent)
    return _validate(HealthSerializer, data, "health", agent)


def parse_missing_blobs(data: Any, *, agent: str) -> list[str]:
    data = _require_dict(data, "blob check", agent)
    missing = data.get("missing")
    if not isinstance(missing, list) or not all(isinstance(h, str) for h in missing):
        raise AgentProtocolError(agent, "blob check: 'missing' is not a list of hashes")
    return missing
