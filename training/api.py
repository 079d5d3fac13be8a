"""The training API (v1): thin function views over the training selectors and services."""

from __future__ import annotations

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from operations.api.parsers import body_object
from operations.selectors import MAX_OFFSET
from operations.serializers import ErrorSerializer, OperationSerializer, serialize_operation
from training import selectors, services
from training.serializers import (
    StrategyDetailSerializer,
    StrategyListSerializer,
    StrategyValidateSerializer,
    StrategyValidationSerializer,
    TrainedModelListSerializer,
    TrainedModelSerializer,
    TrainingStartSerializer,
    strategy_detail,
    strategy_summary,
)

ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer}


@extend_schema(
    request=TrainingStartSerializer,
    responses={202: OperationSerializer, 503: ErrorSerializer, **ERRORS},
    tags=["training"],
    description="Start training a strategy; follow it through /api/v1/operations/{id}/.",
)
@api_view(["POST"])
def training_run_create(request: Request) -> Response:
    body = TrainingStartSerializer(data=body_object(request))
    body.is_valid(raise_exception=True)
    data = body.validated_data
    op = services.training_start(
        strategy=data["strategy"],
        symbols=data.get("symbols"),
        timeframes=data.get("timeframes"),
        start=data.get("start"),
        end=data.get("end"),
        execution_mode=data.get("execution_mode"),
        agent=data.get("agent"),
        require_gpu=data.get("require_gpu", False),
        seed=data.get("seed"),
        user=request.user,
    )
    return Response(serialize_operation(op), status=status.HTTP_202_ACCEPTED)


@extend_schema(responses={200: StrategyListSerializer, **ERRORS}, tags=["training"])
@api_view(["GET"])
def strategy_list(request: Request) -> Response:
    return Response({"strategies": [strategy_summary(s) for s in selectors.strategy_list()]})


@extend_schema(responses={200: StrategyDetailSerializer, **ERRORS}, tags=["training"])
@api_view(["GET"])
def strategy_get(request: Request, name: str) -> Response:
    return Response(strategy_detail(selectors.strategy_get(name)))


@extend_schema(
    request=StrategyValidateSerializer,
    responses={200: StrategyValidationSerializer, **ERRORS},
    tags=["training"],
    description=(
        "Validate strategy YAML. 200 with the resolved config when valid; 400 with "
        "`details` keyed by schema path (`indicators.rsi_14.period`) when not."
    ),
)
@api_view(["POST"])
def strategy_validate(request: Request) -> Response:
    body = StrategyValidateSerializer(data=body_object(request))
    body.is_valid(raise_exception=True)
    config = services.strategy_validate_text(body.validated_data["yaml"])
    return Response({"valid": True, "name": config["name"], "config": config})


class ModelListQuery(serializers.Serializer):
    strategy = serializers.CharField(required=False, allow_blank=True, max_length=120)
    timeframe = serializers.CharField(required=False, allow_blank=True, max_length=8)
    limit = serializers.IntegerField(
        required=False, min_value=1, max_value=selectors.MAX_MODEL_LIST_LIMIT, default=50
    )
    offset = serializers.IntegerField(required=False, min_value=0, max_value=MAX_OFFSET, default=0)


@extend_schema(
    parameters=[ModelListQuery],
    responses={200: TrainedModelListSerializer, **ERRORS},
    tags=["training"],
)
@api_view(["GET"])
def model_list(request: Request) -> Response:
    query = ModelListQuery(data=request.query_params)
    query.is_valid(raise_exception=True)
    q = query.validated_data
    page = selectors.trained_model_list(
        strategy=q.get("strategy") or None,
        timeframe=q.get("timeframe") or None,
        limit=q["limit"],
        offset=q["offset"],
    )
    return Response(
        {"models": TrainedModelSerializer(page.models, many=True).data, "total": page.total}
    )


@extend_schema(responses={200: TrainedModelSerializer, **ERRORS}, tags=["training"])
@api_view(["GET"])
def model_get(request: Request, model_id: int) -> Response:
    return Response(TrainedModelSerializer(selectors.trained_model_get(model_id=model_id)).data)


@extend_schema(
    responses={
        (200, "application/octet-stream"): OpenApiResponse(
            OpenApiTypes.BINARY, description="The model file (torch, weights_only-loadable)."
        ),
        **ERRORS,
    },
    tags=["training"],
    description="Stream the model artifact with `X-Content-SHA256` and `Content-Length`.",
)
@api_view(["GET"])
def model_download(request: Request, model_id: int) -> FileResponse:
    model = selectors.trained_model_get(model_id=model_id)
    path = selectors.trained_model_file(model)
    filename = f"{model.strategy_name}_{model.timeframe}_v{model.version}.pt"
    response = FileResponse(
        open(path, "rb"),  # noqa: SIM115 — FileResponse closes it when the stream ends
        as_attachment=True,
        filename=filename,
        content_type="application/octet-stream",
    )
    response["Content-Length"] = str(path.stat().st_size)
    response["X-Content-SHA256"] = model.sha256
    return response
