"""API shapes of the training app (requests validated here, answers rendered here)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from operations.placement import EXECUTION_MODES
from training.models import TrainedModel
from training.strategy import TIMEFRAME_MINUTES, StrategyFile


class TrainingStartSerializer(serializers.Serializer):
    strategy = serializers.CharField(max_length=64)
    symbols = serializers.ListField(
        child=serializers.RegexField(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$", max_length=20),
        required=False,
        allow_empty=True,
        max_length=20,
    )
    timeframes = serializers.ListField(
        child=serializers.ChoiceField(choices=list(TIMEFRAME_MINUTES)),
        required=False,
        allow_empty=True,
        max_length=7,
    )
    start = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=40)
    end = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=40)
    execution_mode = serializers.ChoiceField(
        choices=EXECUTION_MODES, required=False, allow_null=True, default=None
    )
    agent = serializers.RegexField(
        r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", required=False, allow_blank=True, allow_null=True
    )
    require_gpu = serializers.BooleanField(required=False, default=False)
    seed = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=2**31 - 1
    )


class StrategyValidateSerializer(serializers.Serializer):
    yaml = serializers.CharField(max_length=256 * 1024, trim_whitespace=False)


class StrategySummarySerializer(serializers.Serializer):
    name = serializers.CharField()
    valid = serializers.BooleanField()
    description = serializers.CharField(allow_blank=True)
    symbols = serializers.ListField(child=serializers.CharField())
    timeframes = serializers.ListField(child=serializers.CharField())
    base_timeframe = serializers.CharField(allow_null=True)
    model_inputs = serializers.ListField(child=serializers.CharField())
    labels = serializers.DictField()
    errors = serializers.DictField()


class StrategyListSerializer(serializers.Serializer):
    strategies = StrategySummarySerializer(many=True)


class StrategyDetailSerializer(StrategySummarySerializer):
    config = serializers.DictField(allow_null=True)
    yaml = serializers.CharField(allow_blank=True)


class StrategyValidationSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    name = serializers.CharField()
    config = serializers.DictField()


def strategy_summary(found: StrategyFile) -> dict[str, Any]:
    config = found.config or {}
    data = config.get("training_data", {})
    return {
        "name": found.name,
        "valid": found.is_valid,
        "description": config.get("description", ""),
        "symbols": data.get("symbols", []),
        "timeframes": data.get("timeframes", []),
        "base_timeframe": data.get("base_timeframe"),
        "model_inputs": config.get("model_inputs", []),
        "labels": config.get("labels", {}),
        "errors": found.error.as_details() if found.error else {},
    }


def strategy_detail(found: StrategyFile) -> dict[str, Any]:
    return {**strategy_summary(found), "config": found.config, "yaml": found.text}


class TrainedModelSerializer(serializers.ModelSerializer):
    label = serializers.CharField(read_only=True)
    warnings = serializers.ListField(child=serializers.DictField(), read_only=True)
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = TrainedModel
        fields = (
            "id",
            "label",
            "strategy_name",
            "config_hash",
            "timeframe",
            "timeframes",
            "symbols",
            "version",
            "metrics",
            "feature_names",
            "metadata",
            "size_bytes",
            "sha256",
            "weights_sha256",
            "warnings",
            "operation_id",
            "created_at",
            "download_url",
        )

    def get_download_url(self, obj: TrainedModel) -> str:
        return f"/api/v1/training/models/{obj.pk}/download"


class TrainedModelListSerializer(serializers.Serializer):
    models = TrainedModelSerializer(many=True)
    total = serializers.IntegerField(min_value=0)
