"""API shapes of the agent registry (backend `GET /api/v1/agents/…`) and of the requests only an
agent serves (what comes back from an agent is in `hostagents.contract`)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from hostagents.models import Agent
from hostagents.selectors import agent_health_age
from operations.selectors import MAX_CURSOR, MAX_METRICS_LIMIT


class AgentSerializer(serializers.Serializer):
    name = serializers.CharField()
    base_url = serializers.CharField()
    enabled = serializers.BooleanField()
    capabilities = serializers.ListField(child=serializers.CharField())
    reachable = serializers.BooleanField()
    health = serializers.DictField(allow_null=True)
    health_pulled_at = serializers.DateTimeField(allow_null=True)
    health_age_seconds = serializers.FloatField(allow_null=True)
    last_error = serializers.CharField(allow_blank=True)
    origin = serializers.CharField()


class AgentListSerializer(serializers.Serializer):
    agents = AgentSerializer(many=True)


def agent_payload(agent: Agent) -> dict[str, Any]:
    return {
        "name": agent.name,
        "base_url": agent.base_url,
        "enabled": agent.enabled,
        "capabilities": list(agent.capabilities or []),
        "reachable": agent.reachable,
        "health": agent.health,
        "health_pulled_at": agent.health_pulled_at,
        "health_age_seconds": agent_health_age(agent),
        "last_error": agent.last_error,
        "origin": agent.origin,
    }


class AgentCountdownSerializer(serializers.Serializer):
    steps = serializers.IntegerField(min_value=1, max_value=100_000, default=10)
    step_seconds = serializers.FloatField(min_value=0.0, max_value=60.0, default=0.5)
    fail_at = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None)
    artifact_bytes = serializers.IntegerField(
        min_value=0, max_value=64 * 1024 * 1024, required=False, default=0
    )


class MissingBlobsRequestSerializer(serializers.Serializer):
    sha256 = serializers.ListField(child=serializers.RegexField(r"^[0-9a-f]{64}$"), max_length=1000)


class StartInputSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=120)
    sha256 = serializers.RegexField(r"^[0-9a-f]{64}$")
    rows = serializers.IntegerField(min_value=0, required=False)
    data = serializers.CharField(
        required=False, help_text="base64; only for inputs the agent lacks"
    )


class AgentStartSerializer(serializers.Serializer):
    """The body of an agent start (documentation; the kind's `prepare` validates `params`)."""

    operation_type = serializers.CharField(max_length=40)
    params = serializers.DictField()
    inputs = StartInputSerializer(many=True, required=False)


class MissingBlobsAnswerSerializer(serializers.Serializer):
    missing = serializers.ListField(child=serializers.RegexField(r"^[0-9a-f]{64}$"))


class RefreshQuery(serializers.Serializer):
    """The query of an agent's `GET operations/{id}/refresh/` (bounded like `…/metrics/`)."""

    cursor = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=MAX_CURSOR,
        default=0,
        help_text="the first metric seq wanted (the backend's stored source cursor)",
    )
    limit = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_METRICS_LIMIT,
        default=MAX_METRICS_LIMIT,
        help_text="at most this many records",
    )
    log_cursor = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=MAX_CURSOR,
        default=None,
        allow_null=True,
        help_text=(
            "the first log seq wanted (the backend's stored source cursor of the operation's log); "
            "without it the answer carries no log lines"
        ),
    )
