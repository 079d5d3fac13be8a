"""API views only an agent serves: the idempotent start of any registered operation kind, start
lookup, the input-blob check, the backend's one-request refresh of an operation and the
deprecated `/training/status/{session_id}` that older clients of the upstream project still poll.

A start answers the same operation shape as every operations endpoint; it honours the
`Idempotency-Key` header the backend sends (its own operation id).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from hostagents import agent_selectors, agent_services
from hostagents.blobs import BlobError, blob_put_stream, blobs_missing
from hostagents.contract import RefreshPageSerializer
from hostagents.health import count_served
from hostagents.metrics import INPUT_BYTES
from hostagents.serializers import (
    AgentStartSerializer,
    MissingBlobsAnswerSerializer,
    MissingBlobsRequestSerializer,
    RefreshQuery,
)
from operations import selectors
from operations.api.parsers import body_object
from operations.exceptions import InvalidInput, NotFound, OperationNotFound
from operations.serializers import ErrorSerializer, OperationSerializer, serialize_operation

_REFRESH_QUERY = RefreshQuery()
_JSON = JSONRenderer()

AGENT_ERRORS = {
    400: ErrorSerializer,
    401: ErrorSerializer,
    409: ErrorSerializer,
    503: ErrorSerializer,
}


def counted(route: str, view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Wrap a view so the agent counts what it served (health shows it; tests count round
    trips to prove the backend's TTL cache, benchmarks the two-level hit rate)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        count_served(f"{request.method} {route}")
        return view(request, *args, **kwargs)

    return wrapper


@extend_schema(
    tags=["agent"],
    request=AgentStartSerializer,
    responses={202: OperationSerializer, 200: OperationSerializer, **AGENT_ERRORS},
    description=(
        "Start work of a registered operation kind here. Idempotent by the `Idempotency-Key` "
        "header (the backend's operation id): a repeated start answers 200 with the operation "
        "the first one created."
    ),
)
@api_view(["POST"])
def start(request: Request) -> Response:
    if not isinstance(request.data, dict):
        raise InvalidInput("the body must be a JSON object", field="non_field_errors")
    key = request.headers.get("Idempotency-Key", "").strip()
    op, created = agent_services.agent_start(
        operation_type=request.data.get("operation_type"),
        params=request.data.get("params", {}),
        inputs=request.data.get("inputs"),
        idempotency_key=key,
        user=request.user,
    )
    return Response(
        serialize_operation(op), status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK
    )


@extend_schema(
    tags=["agent"],
    responses={200: OperationSerializer, 401: ErrorSerializer, 404: ErrorSerializer},
    description="The operation a start with this key created.",
)
@api_view(["GET"])
def start_lookup(request: Request, key: str) -> Response:
    op = agent_services.agent_start_lookup(idempotency_key=key)
    if op is None:
        raise NotFound(f"no start with key {key!r}", details={"idempotency_key": key})
    return Response(serialize_operation(op))


class _AnswerJSON(BaseContentNegotiation):
    """The refresh answers JSON, the one renderer an agent has, whatever `Accept` says: it is
    not worth parsing that header on every refresh (6 % of the request's time)."""

    def select_parser(self, request: Request, parsers: list[Any]) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(
        self, request: Request, renderers: list[Any], format_suffix: str | None = None
    ) -> tuple[Any, str]:
        return renderers[0], renderers[0].media_type


def _negotiated_by(negotiation: type[BaseContentNegotiation]) -> Callable[[Any], Any]:
    def decorate(view: Any) -> Any:
        view.content_negotiation_class = negotiation  # read by @api_view, like @renderer_classes
        return view

    return decorate


@extend_schema(
    tags=["agent"],
    parameters=[RefreshQuery],
    responses={200: RefreshPageSerializer, 400: ErrorSerializer, 401: ErrorSerializer,
               404: ErrorSerializer},
    description=(
        "One refresh for the backend: the operation (as `operations/{id}/` answers it) and its "
        "metric records with seq ≥ cursor (as `operations/{id}/metrics/?cursor=&limit=` answers "
        "them), in one request; with `log_cursor`, also its log lines from there (`logs`, "
        "`logs_new_cursor`, as `operations/{id}/logs/` answers them)."
    ),
)  # fmt: skip
@api_view(["GET"])
@_negotiated_by(_AnswerJSON)
def operation_refresh(request: Request, operation_id: str) -> HttpResponse:
    # The request a backend sends on every refresh, so it is kept lean: the query is validated
    # on one bound serializer (what `is_valid` runs; a new one deep-copies its fields) and the
    # answer rendered here, with the renderer DRF would use, instead of through a `Response`.
    query = _REFRESH_QUERY.run_validation(request.query_params)
    page = agent_selectors.agent_refresh(
        operation_id=operation_id,
        cursor=query["cursor"],
        limit=query["limit"],
        log_cursor=query.get("log_cursor"),
    )
    body: dict[str, Any] = {
        "operation": serialize_operation(page.operation),
        "metrics": page.records,
        "new_cursor": page.new_cursor,
    }
    if page.logs is not None:
        body["logs"] = page.logs.lines
        body["logs_new_cursor"] = page.logs.new_cursor
    return HttpResponse(_JSON.render(body), content_type="application/json")


@extend_schema(
    tags=["agent"],
    request=MissingBlobsRequestSerializer,
    responses={200: MissingBlobsAnswerSerializer, 400: ErrorSerializer, 401: ErrorSerializer},
    description="Which of these input hashes this agent does not hold.",
)
@api_view(["POST"])
def blobs_missing_view(request: Request) -> Response:
    body = MissingBlobsRequestSerializer(data=body_object(request))
    body.is_valid(raise_exception=True)
    return Response({"missing": blobs_missing(body.validated_data["sha256"])})


@extend_schema(
    tags=["agent"],
    request={"application/octet-stream": bytes},
    responses={201: dict, 200: dict, **AGENT_ERRORS},
    description=(
        "Upload one input blob as the raw request body (Content-Length required). Verified "
        "against its sha256, size-capped, stored atomically; one already stored answers 200."
    ),
)
@api_view(["PUT"])
def blob_put_view(request: Request, sha256: str) -> Response:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or -1)
    except ValueError:
        length = -1
    try:
        # The raw body, read in chunks: never parsed, never whole in memory.
        _path, created = blob_put_stream(sha256, request.stream or io.BytesIO(), length)
    except BlobError as exc:
        raise InvalidInput(str(exc), field="blob") from None
    if created:
        INPUT_BYTES.labels("received").inc(max(length, 0))
    return Response(
        {"sha256": sha256, "size": length},
        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
    )


def _session_to_operation_id(session_id: str) -> str:
    # Old clients built "host_training_{session_id}"; here the session id *is* the operation id.
    return session_id.removeprefix("host_training_")


@extend_schema(
    tags=["agent"],
    deprecated=True,
    responses={200: dict, 401: ErrorSerializer, 404: ErrorSerializer},
    description="Use /api/v1/operations/{id}.",
)
@api_view(["GET"])
def deprecated_training_status(request: Request, session_id: str) -> Response:
    operation_id = _session_to_operation_id(session_id)
    try:
        op = selectors.operation_get(operation_id=operation_id)
    except OperationNotFound:
        raise NotFound(
            f"no training session {session_id!r}", details={"session_id": session_id}
        ) from None
    progress = op.progress or {}
    context = progress.get("context") or {}
    use_instead = f"/api/v1/operations/{op.operation_id}"
    body = {
        "session_id": session_id,
        "status": op.status,
        "progress": {
            "percentage": progress.get("percentage", 0.0),
            "current_step": progress.get("message", ""),
            "epoch": context.get("epoch", progress.get("steps_completed", 0)),
            "total_epochs": context.get("total_epochs", progress.get("steps_total", 0)),
        },
        "error": op.error_message or None,
        "started_at": op.started_at.isoformat() if op.started_at else None,
        "completed_at": op.completed_at.isoformat() if op.completed_at else None,
        "deprecated": True,
        "use_instead": use_instead,
    }
    response = Response(body)
    response["Deprecation"] = "true"
    response["Link"] = f'<{use_instead}>; rel="successor-version"'
    return response
