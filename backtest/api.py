"""The backtest API (v1): thin function views over the backtest selectors and services."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from backtest import selectors, services
from backtest.serializers import (
    BacktestListSerializer,
    BacktestStartSerializer,
    TradesPageSerializer,
)
from operations.api.parsers import body_object
from operations.serializers import ErrorSerializer, OperationSerializer, serialize_operation

ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer}


@extend_schema(
    methods=["POST"],
    request=BacktestStartSerializer,
    responses={202: OperationSerializer, 503: ErrorSerializer, **ERRORS},
    tags=["backtests"],
    description=(
        "Backtest a trained model over stored bars; follow it through /api/v1/operations/{id}/ "
        "(its result_summary holds the figures, baselines, curve and the first trades)."
    ),
)
@extend_schema(
    methods=["GET"],
    request=None,
    responses={200: BacktestListSerializer, **ERRORS},
    tags=["backtests"],
    description="The latest backtests, newest first (at most 50), with their headline figures.",
)
@api_view(["GET", "POST"])
def backtest_create(request: Request) -> Response:
    if request.method == "GET":
        rows = [_row(op) for op in selectors.backtest_list()]
        return Response({"backtests": rows})
    body = body_object(request)
    if hasattr(body, "dict"):  # form fields
        body = body.dict()
    op = services.backtest_start(body=body, user=request.user)
    return Response(serialize_operation(op), status=status.HTTP_202_ACCEPTED)


def _row(op) -> dict:
    """One backtest, compact: its inputs and headline figures, not its curve and trades."""
    summary = op.result_summary if isinstance(op.result_summary, dict) else {}
    meta = op.metadata or {}
    return {
        "operation_id": op.operation_id,
        "status": op.status,
        "created_at": op.created_at.isoformat(),
        "model": {"id": meta.get("model_id"), "label": meta.get("model_label")},
        "symbol": meta.get("symbol"),
        "start": meta.get("start"),
        "end": meta.get("end"),
        "in_sample": (summary.get("in_sample") or {}).get("overlaps"),
        "figures": summary.get("figures"),
        "baselines": {
            name: (summary.get("baselines") or {}).get(name, {}).get("total_return")
            for name in ("buy_and_hold", "rule")
        }
        if summary.get("baselines")
        else None,
    }


@extend_schema(
    responses={200: TradesPageSerializer, **ERRORS},
    tags=["backtests"],
    parameters=[
        OpenApiParameter("offset", int, description="first trade, from 0"),
        OpenApiParameter("limit", int, description=f"1-{selectors.MAX_TRADES_PAGE}, default 100"),
    ],
    description="A page of a backtest's trades, oldest first (every one, from its trade records).",
)
@api_view(["GET"])
def backtest_trades(request: Request, operation_id: str) -> Response:
    page = selectors.backtest_trades(
        operation_id=operation_id,
        offset=request.query_params.get("offset"),
        limit=request.query_params.get("limit"),
    )
    return Response(
        {
            "operation_id": page.operation_id,
            "status": page.status,
            "total": page.total,
            "kept": page.kept,
            "offset": page.offset,
            "limit": page.limit,
            "trades": page.trades,
        }
    )
