"""The evaluation API (v1): thin function views over the evaluation selectors and services."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from evaluation import selectors, services
from evaluation.serializers import EvaluationListSerializer, EvaluationStartSerializer
from operations.api.parsers import body_object
from operations.models import Operation
from operations.serializers import ErrorSerializer, OperationSerializer, serialize_operation

ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer}


@extend_schema(
    methods=["POST"],
    request=EvaluationStartSerializer,
    responses={202: OperationSerializer, 503: ErrorSerializer, **ERRORS},
    tags=["evaluations"],
    description=(
        "Start a walk-forward evaluation of a strategy (folds × seeds, purged and embargoed); "
        "follow it through /api/v1/operations/{id}/ (its result_summary holds every fold's "
        "figures and the aggregate with its bootstrap interval)."
    ),
)
@extend_schema(
    methods=["GET"],
    request=None,
    responses={200: EvaluationListSerializer, **ERRORS},
    tags=["evaluations"],
    description="The latest evaluations, newest first (at most 50), with their lift interval.",
)
@api_view(["GET", "POST"])
def evaluation_create(request: Request) -> Response:
    if request.method == "GET":
        return Response({"evaluations": [_row(op) for op in selectors.evaluation_list()]})
    body = body_object(request)
    if hasattr(body, "dict"):  # form fields
        body = body.dict()
    op = services.evaluation_start(body=body, user=request.user)
    return Response(serialize_operation(op), status=status.HTTP_202_ACCEPTED)


def _row(op: Operation) -> dict:
    """One evaluation, compact: its request and its lift interval, not its folds."""
    summary = op.result_summary if isinstance(op.result_summary, dict) else {}
    meta = op.metadata or {}
    agg = summary.get("aggregate") if isinstance(summary.get("aggregate"), dict) else {}
    return {
        "operation_id": op.operation_id,
        "status": op.status,
        "created_at": op.created_at.isoformat(),
        **{k: meta.get(k) for k in ("strategy", "symbol", "start", "end", "folds", "scheme")},
        "seeds": meta.get("seeds"),
        "units_done": summary.get("units_done"),
        "units_total": summary.get("units_total"),
        "lift": (agg.get("ci") or {}).get("accuracy_lift"),
        "log_loss_lift": (agg.get("ci") or {}).get("log_loss_lift"),
    }
