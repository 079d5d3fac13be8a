"""The operations API (v1): thin views over the selectors and services.

The same views serve the backend and every host agent (docs/architecture.md §1: one API everywhere).
"""

from __future__ import annotations

import functools

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from operations import execution, selectors
from operations.api.parsers import body_object
from operations.countdown import countdown_start
from operations.exceptions import Conflict
from operations.models import OperationStatus
from operations.serializers import (
    CancelRequestSerializer,
    CountdownStartSerializer,
    ErrorSerializer,
    LogsPageSerializer,
    MetricsPageSerializer,
    OperationListSerializer,
    OperationSerializer,
    serialize_operation,
)

ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer}


_STATUSES = "|".join(OperationStatus.values)
STATUS_LIST = f"^({_STATUSES})(,({_STATUSES}))*$"


class ListQuery(serializers.Serializer):
    status = serializers.RegexField(
        STATUS_LIST,
        required=False,
        allow_blank=True,
        max_length=200,
        help_text=f"comma-separated: {', '.join(OperationStatus.values)}",
        error_messages={
            "invalid": f"unknown status; use comma-separated {', '.join(OperationStatus.values)}"
        },
    )
    operation_type = serializers.RegexField(
        r"^[A-Za-z_][A-Za-z0-9_]{0,39}$", required=False, allow_blank=True, max_length=40
    )
    active_only = serializers.BooleanField(required=False, default=False)
    search = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=selectors.MAX_SEARCH,
        help_text="part of the operation id or the strategy name (case-insensitive)",
    )
    limit = serializers.IntegerField(
        required=False, min_value=1, max_value=selectors.MAX_LIST_LIMIT, default=50
    )
    offset = serializers.IntegerField(
        required=False, min_value=0, max_value=selectors.MAX_OFFSET, default=0
    )


class GetQuery(serializers.Serializer):
    force_refresh = serializers.BooleanField(required=False, default=False)


class MetricsQuery(serializers.Serializer):
    cursor = serializers.IntegerField(
        required=False, min_value=0, max_value=selectors.MAX_CURSOR, default=0
    )
    limit = serializers.IntegerField(
        required=False, min_value=1, max_value=selectors.MAX_METRICS_LIMIT, default=None
    )
    kind = serializers.CharField(required=False, allow_blank=True, max_length=32)


class LogsQuery(serializers.Serializer):
    cursor = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=selectors.MAX_CURSOR,
        default=0,
        help_text="the first seq wanted (the `new_cursor` of the previous answer)",
    )
    limit = serializers.IntegerField(
        required=False, min_value=1, max_value=selectors.MAX_LOGS_LIMIT, default=200
    )


def _query(serializer_class: type[serializers.Serializer], request: Request) -> dict:
    if not request.query_params:
        # Nothing asked: the defaults, without building a serializer (most polls ask nothing).
        return dict(_defaults(serializer_class))
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data


def _polled(request: Request, body: dict) -> HttpResponse:
    """The answer to a poll: rendered here when the negotiated renderer is plain JSON (what a
    `Response` would render, byte for byte, without DRF's template-response pipeline — a tenth
    of a cheap answer's cost); through a `Response` for everything else (the browsable API,
    `; indent=`)."""
    renderer = getattr(request, "accepted_renderer", None)
    if type(renderer) is JSONRenderer and request.accepted_media_type == renderer.media_type:
        return HttpResponse(renderer.render(body), content_type=renderer.media_type)
    return Response(body)


@functools.cache
def _defaults(serializer_class: type[serializers.Serializer]) -> dict:
    query = serializer_class(data={})
    query.is_valid(raise_exception=True)
    return dict(query.validated_data)


@extend_schema(
    operation_id="operations_list",
    parameters=[ListQuery],
    responses={200: OperationListSerializer, **ERRORS},
    tags=["operations"],
)
@api_view(["GET"])
def operation_list(request: Request) -> Response:
    q = _query(ListQuery, request)
    page = selectors.operation_list(
        status=q.get("status") or None,
        operation_type=q.get("operation_type") or None,
        active_only=q["active_only"],
        search=q.get("search") or None,
        limit=q["limit"],
        offset=q["offset"],
    )
    return Response(
        {
            "operations": [serialize_operation(op) for op in page.operations],
            "total": page.total,
            "active_count": page.active_count,
        }
    )


@extend_schema(
    operation_id="operations_get",
    parameters=[GetQuery],
    responses={200: OperationSerializer, **ERRORS},
    tags=["operations"],
)
@api_view(["GET"])
def operation_detail(request: Request, operation_id: str) -> HttpResponse:
    q = _query(GetQuery, request)
    op = selectors.operation_get(operation_id=operation_id, force_refresh=q["force_refresh"])
    return _polled(request, serialize_operation(op))


@extend_schema(
    operation_id="operations_metrics",
    parameters=[MetricsQuery],
    responses={200: MetricsPageSerializer, **ERRORS},
    tags=["operations"],
)
@api_view(["GET"])
def operation_metrics(request: Request, operation_id: str) -> HttpResponse:
    q = _query(MetricsQuery, request)
    page = selectors.operation_metrics(
        operation_id=operation_id, cursor=q["cursor"], limit=q["limit"], kind=q.get("kind") or None
    )
    return _polled(request, {"metrics": page.records, "new_cursor": page.new_cursor})


@extend_schema(
    operation_id="operations_logs",
    parameters=[LogsQuery],
    responses={200: LogsPageSerializer, **ERRORS},
    tags=["operations"],
    description=(
        "The operation's log lines with seq ≥ cursor, oldest first, at most `limit`: what its "
        "worker, the services and (for remote work) its agent logged about it. A remote "
        "operation's new lines are pulled from its agent like its progress. Only the newest "
        "`KTRDR_OPERATION_LOG_MAX_LINES` are kept; `first_seq` says where they start."
    ),
)
@api_view(["GET"])
def operation_logs(request: Request, operation_id: str) -> HttpResponse:
    q = _query(LogsQuery, request)
    page = selectors.operation_logs(operation_id=operation_id, cursor=q["cursor"], limit=q["limit"])
    return _polled(
        request, {"logs": page.lines, "new_cursor": page.new_cursor, "first_seq": page.first_seq}
    )


@extend_schema(
    operation_id="operations_cancel",
    request=CancelRequestSerializer,
    responses={202: OperationSerializer, **ERRORS},
    tags=["operations"],
)
@api_view(["POST"])
def operation_cancel(request: Request, operation_id: str) -> Response:
    body = CancelRequestSerializer(data=body_object(request))
    body.is_valid(raise_exception=True)
    selectors.operation_get(operation_id=operation_id)  # 404 before anything else
    execution.operation_cancel(
        operation_id=operation_id, reason=body.validated_data["reason"], user=request.user
    )
    op = selectors.operation_get(operation_id=operation_id, force_refresh=True)
    return Response(serialize_operation(op), status=status.HTTP_202_ACCEPTED)


@extend_schema(
    operation_id="operations_rerun",
    request=None,
    responses={202: OperationSerializer, **ERRORS},
    tags=["operations"],
    description=(
        "Start a finished operation again with the same inputs: a new operation of the caller, "
        "whose `metadata.rerun_of` names this one. 409 while it is still active (or when its "
        "kind cannot be re-run); 400 when its stored inputs no longer validate."
    ),
)
@api_view(["POST"])
def operation_rerun(request: Request, operation_id: str) -> Response:
    op = execution.operation_rerun(operation_id=operation_id, user=request.user)
    return Response(serialize_operation(op), status=status.HTTP_202_ACCEPTED)


@extend_schema(
    operation_id="operations_resume",
    request=None,
    responses={202: OperationSerializer, **ERRORS},
    tags=["operations"],
    description=(
        "Go on with a failed or cancelled operation from where it stopped (a training from its "
        "last checkpoint, a load fetching only what is missing, a backtest from the bar it "
        "reached): a new operation of the caller, whose `metadata.resume_of` names this one and "
        "which starts with its metric records up to that point. 403 unless the caller started "
        "it or is staff; 409 unless it failed or was cancelled, for a kind that cannot resume, "
        "or when there is nothing to resume from; 400 when the checkpoint fails its sha256."
    ),
)
@api_view(["POST"])
def operation_resume(request: Request, operation_id: str) -> Response:
    op = execution.operation_resume(operation_id=operation_id, user=request.user)
    return Response(serialize_operation(op), status=status.HTTP_202_ACCEPTED)


class ResultsSerializer(serializers.Serializer):
    operation_id = serializers.CharField()
    status = serializers.CharField()
    result_summary = serializers.JSONField(allow_null=True)
    error_message = serializers.CharField(allow_blank=True)


@extend_schema(
    operation_id="operations_results",
    responses={200: ResultsSerializer, **ERRORS},
    tags=["operations"],
    description="The result summary of a finished operation; 409 while it is still active.",
)
@api_view(["GET"])
def operation_results(request: Request, operation_id: str) -> Response:
    op = selectors.operation_get(operation_id=operation_id)
    if not op.is_terminal:
        raise Conflict(
            f"Operation {operation_id} is {op.status}; results exist once it has ended",
            details={"operation_id": operation_id, "status": op.status},
        )
    return Response(
        {
            "operation_id": op.operation_id,
            "status": op.status,
            "result_summary": op.result_summary,
            "error_message": op.error_message,
        }
    )


@extend_schema(
    operation_id="operations_countdown_start",
    request=CountdownStartSerializer,
    responses={202: OperationSerializer, **ERRORS},
    tags=["operations"],
    description="Start the built-in countdown operation (N steps, one metric per step).",
)
@api_view(["POST"])
def countdown_create(request: Request) -> Response:
    body = CountdownStartSerializer(data=body_object(request))
    body.is_valid(raise_exception=True)
    op = countdown_start(**body.validated_data, user=request.user)
    return Response(serialize_operation(op), status=status.HTTP_202_ACCEPTED)
