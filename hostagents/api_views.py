"""API views of the hostagents app that exist on the backend (and, for health and artifacts,
on agents too): health, artifact download, the agent registry, a countdown on an agent.

Thin: they call selectors, services and the agent place, and render; errors are domain
exceptions that the shared handler turns into the `{"error": …}` envelope.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.http import FileResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hostagents import selectors
from hostagents.artifacts import NAME_RE, artifact_get, resume_file_path, resume_files
from hostagents.artifacts import sha256_file as artifact_sha256
from hostagents.conf import is_agent
from hostagents.contract import HealthSerializer
from hostagents.health import health_payload
from hostagents.metrics import ARTIFACT_BYTES
from hostagents.serializers import (
    AgentCountdownSerializer,
    AgentListSerializer,
    AgentSerializer,
    agent_payload,
)
from operations import selectors as op_selectors
from operations.countdown import COUNTDOWN, validate_params
from operations.exceptions import NotFound, ServiceUnavailable
from operations.models import Executor
from operations.placement import Placement
from operations.places import remote_places
from operations.serializers import ErrorSerializer, OperationSerializer, serialize_operation

ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 404: ErrorSerializer, 503: ErrorSerializer}


class HealthPermission(permissions.BasePermission):
    """Agents: token required like everywhere. Backend: public liveness for load balancers
    (anonymous callers learn only the status; the details need a login)."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if is_agent():
            return bool(request.user and request.user.is_authenticated)
        return True


@extend_schema(
    tags=["agents"],
    responses={200: HealthSerializer},
    description=(
        "Liveness; with a login also role, capabilities (incl. GPU), version, running operations "
        "and whether the database and the cache answer. 503 while the database does not."
    ),
)
@api_view(["GET"])
@permission_classes([HealthPermission])
def health(request: Request) -> Response:
    body = health_payload()
    # The database down is an outage a load balancer must see; a cache outage only slows reads.
    code = 200 if body["checks"]["database"]["ok"] else 503
    if not (request.user and request.user.is_authenticated):
        return Response({"status": body["status"]}, status=code)
    return Response(body, status=code)


@extend_schema(
    tags=["operations"],
    responses={200: OpenApiResponse(description="the file"), **ERRORS},
    description="An artifact of an operation, with X-Content-SHA256 and Content-Length.",
)
@api_view(["GET"])
def artifact_download(request: Request, operation_id: str, name: str) -> FileResponse:
    if not NAME_RE.match(name):
        raise NotFound(f"no artifact {name!r}", details={"name": name})
    op_selectors.operation_get(operation_id=operation_id)  # 404 for an unknown operation
    artifact = artifact_get(operation_id=operation_id, name=name)
    path = Path(artifact.path) if artifact else None
    if artifact is None or path is None or not path.is_file():
        raise NotFound(
            f"operation {operation_id} has no artifact {name!r}",
            details={"operation_id": operation_id, "name": name},
        )
    response = FileResponse(
        open(path, "rb"),  # noqa: SIM115 - FileResponse closes it when the stream ends
        as_attachment=True,
        filename=name,
        content_type="application/octet-stream",
    )
    response.block_size = 1 << 20  # 1 MiB chunks: the default 4 KiB costs a hop per 4 KiB
    response["X-Content-SHA256"] = artifact.sha256
    response["Content-Length"] = str(artifact.size)
    ARTIFACT_BYTES.labels("sent").inc(artifact.size)
    return response


@extend_schema(
    operation_id="operations_resume_files",
    tags=["operations"],
    responses={200: OpenApiResponse(description="{files: [{name, size, sha256}]}"), **ERRORS},
    description=(
        "The files an operation left for a resume of it (a training's checkpoint), however it "
        "ended; an empty list when it left none. Agents only."
    ),
)
@api_view(["GET"])
def resume_files_list(request: Request, operation_id: str) -> Response:
    op_selectors.operation_get(operation_id=operation_id)  # 404 for an unknown operation
    return Response({"files": resume_files(operation_id)})


@extend_schema(
    operation_id="operations_resume_file",
    tags=["operations"],
    responses={200: OpenApiResponse(description="the file"), **ERRORS},
    description="One file left for a resume, with X-Content-SHA256 and Content-Length.",
)
@api_view(["GET"])
def resume_file_download(request: Request, operation_id: str, name: str) -> FileResponse:
    op_selectors.operation_get(operation_id=operation_id)  # 404 for an unknown operation
    path = resume_file_path(operation_id, name)
    if path is None:
        raise NotFound(
            f"operation {operation_id} left no file {name!r} for a resume",
            details={"operation_id": operation_id, "name": name},
        )
    handle = open(path, "rb")  # noqa: SIM115 - FileResponse closes it when the stream ends
    # Size and hash of the very file opened (a later write replaces the name, not this file).
    size = os.fstat(handle.fileno()).st_size
    response = FileResponse(
        handle, as_attachment=True, filename=name, content_type="application/octet-stream"
    )
    response.block_size = 1 << 20
    response["X-Content-SHA256"] = artifact_sha256(path)
    response["Content-Length"] = str(size)
    ARTIFACT_BYTES.labels("sent").inc(size)
    return response


@extend_schema(tags=["agents"], responses={200: AgentListSerializer})
@api_view(["GET"])
def agent_list(request: Request) -> Response:
    agents = selectors.agent_list()
    return Response(AgentListSerializer({"agents": [agent_payload(a) for a in agents]}).data)


@extend_schema(tags=["agents"], responses={200: AgentSerializer, **ERRORS})
@api_view(["GET"])
def agent_detail(request: Request, name: str) -> Response:
    refresh = request.query_params.get("refresh", "").lower() in {"1", "true", "yes"}
    agent = selectors.agent_get(name=name, refresh=refresh)
    return Response(AgentSerializer(agent_payload(agent)).data)


@extend_schema(
    tags=["agents"],
    request=AgentCountdownSerializer,
    responses={202: OperationSerializer, **ERRORS},
    description="Run the built-in countdown on this agent (tracked like any remote operation).",
)
@api_view(["POST"])
def agent_countdown(request: Request, name: str) -> Response:
    body = AgentCountdownSerializer(data=request.data or {})
    body.is_valid(raise_exception=True)
    params = validate_params(
        steps=body.validated_data["steps"],
        step_seconds=body.validated_data["step_seconds"],
        fail_at=body.validated_data["fail_at"],
    )
    params["artifact_bytes"] = body.validated_data["artifact_bytes"]
    selectors.agent_get(name=name)  # 404 for an unknown name
    place = remote_places()[Executor.AGENT]
    (candidate,) = place.candidates(kind=COUNTDOWN, metadata=params, named=name, require_gpu=False)
    if candidate.why_not:
        raise ServiceUnavailable(
            f"agent {name} cannot run the countdown: {candidate.why_not}", details={"agent": name}
        )
    placement = Placement(
        Executor.AGENT, candidate.target, f"agent {name} was asked for by name", mode="agent"
    )
    op = place.start(
        kind=COUNTDOWN,
        target=candidate.target,
        metadata={**params, "placement": placement.as_metadata()},
        user=request.user,
    )
    return Response(serialize_operation(op), status=status.HTTP_202_ACCEPTED)
