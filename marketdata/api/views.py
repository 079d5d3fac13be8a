"""Thin DRF views over the marketdata services and selectors.

Bars are capped: GET /api/v1/data/series/{symbol}/{timeframe}/ answers at most `limit` bars
(default and maximum BARS_API_MAX, 10,000), the *latest* ones in [start, end); `truncated`
says there were more and `next_end` is the `end` to ask for the bars before them.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view, parser_classes
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from marketdata import selectors, services, store
from marketdata.conf import md_setting
from marketdata.models import BarSeries
from marketdata.planner import MODES
from marketdata.services import LOAD_SOURCES
from marketdata.timeframes import TIMEFRAMES
from operations.exceptions import InvalidInput
from operations.placement import EXECUTION_MODES
from operations.serializers import ErrorSerializer, OperationSerializer, serialize_operation

ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 404: ErrorSerializer, 503: ErrorSerializer}


class ProvenanceSerializer(serializers.Serializer):
    """One range of bars a write added or replaced (`marketdata.store`)."""

    source = serializers.CharField()
    start = serializers.CharField()
    end = serializers.CharField()
    bars = serializers.IntegerField()
    at = serializers.CharField()
    scattered = serializers.BooleanField(
        required=False, help_text="the write's bars lie between older ones in this span"
    )
    before_provenance = serializers.BooleanField(
        required=False, help_text="stored before ranges were kept: the whole series then"
    )


class SeriesSerializer(serializers.ModelSerializer):
    provenance = ProvenanceSerializer(many=True, read_only=True)

    class Meta:
        model = BarSeries
        fields = [
            "symbol", "timeframe", "asset_class", "source", "sources", "provenance",
            "first_timestamp", "last_timestamp", "row_count", "gap_summary", "file_size",
            "contract", "updated_at",
        ]  # fmt: skip


class SeriesListSerializer(serializers.Serializer):
    series = SeriesSerializer(many=True)
    total = serializers.IntegerField()


class BarSerializer(serializers.Serializer):
    timestamp = serializers.DateTimeField()
    open = serializers.FloatField()
    high = serializers.FloatField()
    low = serializers.FloatField()
    close = serializers.FloatField()
    volume = serializers.FloatField()


class BarsPageSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    timeframe = serializers.CharField()
    start = serializers.CharField(allow_null=True)
    end = serializers.CharField(allow_null=True)
    count = serializers.IntegerField()
    total_in_range = serializers.IntegerField()
    truncated = serializers.BooleanField()
    next_end = serializers.CharField(allow_null=True)
    bars = BarSerializer(many=True)


class SeriesQuery(serializers.Serializer):
    symbol = serializers.CharField(required=False, allow_blank=True, max_length=16)
    timeframe = serializers.CharField(required=False, allow_blank=True, max_length=8)


class BarsQuery(serializers.Serializer):
    start = serializers.CharField(required=False, allow_blank=True, max_length=40)
    end = serializers.CharField(required=False, allow_blank=True, max_length=40)
    limit = serializers.IntegerField(required=False, min_value=1, default=None)


# What the schema says is accepted; the services check the same (and say it in their words).
SYMBOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9./-]{0,15}$"
SYMBOL_ERRORS = {"invalid": "not a valid symbol: a forex pair like EURUSD or a ticker like AAPL"}


def _choice(choices: tuple[str, ...] | list[str], what: str, **kwargs: Any) -> Any:
    return serializers.ChoiceField(
        choices=list(choices),
        error_messages={"invalid_choice": f"unsupported {what} {{input}}: not one of "
                        f"{', '.join(choices)}"},
        **kwargs,
    )  # fmt: skip


class LoadRequestSerializer(serializers.Serializer):
    symbol = serializers.RegexField(SYMBOL_PATTERN, max_length=16, error_messages=SYMBOL_ERRORS)
    timeframe = _choice(list(TIMEFRAMES), "timeframe")
    start = serializers.CharField(required=False, allow_blank=True, max_length=40)
    end = serializers.CharField(required=False, allow_blank=True, max_length=40)
    mode = _choice(MODES, "mode", required=False, allow_blank=True, default="tail")
    # "csv" is accepted here so the service can say where CSV data goes instead.
    source = _choice(
        (*LOAD_SOURCES, "csv"), "source", required=False, allow_blank=True, default="synthetic"
    )
    execution_mode = _choice(
        EXECUTION_MODES, "execution_mode", required=False, allow_blank=True, default="auto"
    )


class ImportRequestSerializer(serializers.Serializer):
    file = serializers.FileField()
    symbol = serializers.RegexField(SYMBOL_PATTERN, max_length=16, error_messages=SYMBOL_ERRORS)
    timeframe = _choice(list(TIMEFRAMES), "timeframe")
    on_conflict = serializers.ChoiceField(
        choices=store.ON_CONFLICT,
        default="reject",
        help_text=(
            "bars that differ from stored ones at the same timestamps: reject (409), keep the "
            "stored ones, or replace them"
        ),
    )


class ImportResultSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    timeframe = serializers.CharField()
    on_conflict = serializers.ChoiceField(choices=store.ON_CONFLICT)
    bars_written = serializers.IntegerField(help_text="bars in the file")
    bars_added = serializers.IntegerField()
    bars_replaced = serializers.IntegerField()
    bars_kept = serializers.IntegerField(help_text="differing bars not imported (keep)")
    bars_unchanged = serializers.IntegerField()
    total = serializers.IntegerField()
    warnings = serializers.ListField(child=serializers.CharField())
    series = SeriesSerializer()


def _query(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data


@extend_schema(
    parameters=[SeriesQuery], responses={200: SeriesListSerializer, **ERRORS}, tags=["data"]
)
@api_view(["GET"])
def series_list(request: Request) -> Response:
    q = _query(SeriesQuery, request)
    rows = list(
        selectors.series_list(symbol=q.get("symbol") or None, timeframe=q.get("timeframe") or None)
    )
    return Response({"series": SeriesSerializer(rows, many=True).data, "total": len(rows)})


@extend_schema(
    parameters=[BarsQuery],
    responses={200: BarsPageSerializer, **ERRORS},
    tags=["data"],
    description=(
        "Bars with start ≤ timestamp < end. At most `limit` bars (default and maximum 10,000): "
        "the latest ones of the range; `truncated` tells there were more and `next_end` is the "
        "`end` to ask for the bars before them."
    ),
)
@api_view(["GET"])
def series_bars(request: Request, symbol: str, timeframe: str) -> Response:
    q = _query(BarsQuery, request)
    cap = int(md_setting("BARS_API_MAX"))
    limit = q.get("limit") or cap
    if limit > cap:
        raise InvalidInput(f"limit must be at most {cap}", field="limit")
    start = services.parse_when(q.get("start"), "start")
    end = services.parse_when(q.get("end"), "end")
    if start and end and end <= start:
        raise InvalidInput("end must be after start", field="end")
    series = selectors.series_get(symbol=symbol, timeframe=timeframe)
    window = selectors.bars_window(
        symbol=series.symbol, timeframe=series.timeframe, start=start, end=end, limit=limit
    )
    frame = window.frame
    bars = [
        {
            "timestamp": ts.isoformat(),
            "open": o,
            "high": h,
            "low": low,
            "close": c,
            "volume": v,
        }
        for ts, o, h, low, c, v in zip(
            frame.index,
            frame["open"],
            frame["high"],
            frame["low"],
            frame["close"],
            frame["volume"],
            strict=True,
        )
    ]
    return Response(
        {
            "symbol": series.symbol,
            "timeframe": series.timeframe,
            "start": start.isoformat() if start else None,
            "end": end.isoformat() if end else None,
            "count": len(bars),
            "total_in_range": window.total_in_range,
            "truncated": window.truncated,
            "next_end": window.next_end.isoformat() if window.next_end is not None else None,
            "bars": bars,
        }
    )


@extend_schema(
    request=LoadRequestSerializer,
    responses={202: OperationSerializer, **ERRORS},
    tags=["data"],
    description="Start a data load (a `data_load` operation); follow it under /operations/.",
)
@api_view(["POST"])
def load_create(request: Request) -> Response:
    body = LoadRequestSerializer(data=request.data or {})
    body.is_valid(raise_exception=True)
    data = body.validated_data
    op = services.data_load_start(
        symbol=data["symbol"],
        timeframe=data["timeframe"],
        start=data.get("start") or None,
        end=data.get("end") or None,
        mode=data.get("mode") or "tail",
        source=data.get("source") or "synthetic",
        execution_mode=data.get("execution_mode") or "auto",
        user=request.user,
    )
    return Response(serialize_operation(op), status=status.HTTP_202_ACCEPTED)


@extend_schema(
    request={"multipart/form-data": ImportRequestSerializer},
    responses={201: ImportResultSerializer, 409: ErrorSerializer, **ERRORS},
    tags=["data"],
    description=(
        "Import a CSV of bars (plain or gzip) into the stored series. Bars that differ from "
        "stored ones at the same timestamps are a 409 naming how many and the first, unless "
        "`on_conflict` is `keep` or `replace`; `warnings` say when another source was merged in."
    ),
)
@api_view(["POST"])
@parser_classes([MultiPartParser, FormParser])
def import_create(request: Request) -> Response:
    body = ImportRequestSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    upload = body.validated_data["file"]
    result = services.bars_import_csv(
        data=services.csv_upload_read(upload=upload),
        symbol=body.validated_data["symbol"],
        timeframe=body.validated_data["timeframe"],
        filename=upload.name or "upload.csv",
        on_conflict=body.validated_data["on_conflict"],
    )
    series = selectors.series_get(symbol=result.symbol, timeframe=result.timeframe)
    return Response(
        {
            "symbol": result.symbol,
            "timeframe": result.timeframe,
            "on_conflict": result.on_conflict,
            "bars_written": result.bars_written,
            "bars_added": result.bars_added,
            "bars_replaced": result.bars_replaced,
            "bars_kept": result.bars_kept,
            "bars_unchanged": result.bars_unchanged,
            "total": result.total,
            "warnings": list(result.warnings),
            "series": SeriesSerializer(series).data,
        },
        status=status.HTTP_201_CREATED,
    )
