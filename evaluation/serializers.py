"""What the evaluation API accepts and answers, for the schema (the checks live in
`evaluation.params` and `evaluation.services`, shared with the command and the page)."""

from __future__ import annotations

from rest_framework import serializers


class BootstrapSerializer(serializers.Serializer):
    resamples = serializers.IntegerField(default=2000, help_text="100-100000")
    confidence = serializers.FloatField(default=0.95, help_text="0.5-0.999")
    seed = serializers.IntegerField(default=0, help_text="the resampling's seed")


class EvaluationStartSerializer(serializers.Serializer):
    strategy = serializers.CharField(help_text="a strategy's name (/api/v1/training/strategies/)")
    symbol = serializers.CharField(required=False, help_text="default: the strategy's first")
    timeframe = serializers.CharField(required=False, help_text="the strategy's base timeframe")
    start = serializers.CharField(required=False, help_text="ISO date; default: the strategy's")
    end = serializers.CharField(required=False, help_text="ISO date (exclusive)")
    folds = serializers.IntegerField(required=False, help_text="2-20, default 5")
    scheme = serializers.ChoiceField(choices=["expanding", "rolling"], required=False)
    train_bars = serializers.IntegerField(
        required=False, help_text="rolling window, or the least rows of the first expanding one"
    )
    test_bars = serializers.IntegerField(required=False, help_text="rows per test fold")
    test_fraction = serializers.FloatField(required=False, help_text="or this share, 0.01-0.5")
    purge_bars = serializers.IntegerField(
        required=False, help_text="rows between training and test; default the label horizon"
    )
    embargo_bars = serializers.IntegerField(
        required=False, help_text="rows after a test fold never trained on; default the horizon"
    )
    seeds = serializers.JSONField(
        required=False, help_text="a count (1-10) or a list of distinct seeds"
    )
    epochs = serializers.IntegerField(required=False, help_text="override, 1-1000")
    bootstrap = BootstrapSerializer(required=False)
    execution_mode = serializers.ChoiceField(choices=["auto", "local", "agent"], required=False)
    agent = serializers.CharField(required=False, help_text="an agent's name (a training agent)")
    require_gpu = serializers.BooleanField(required=False)


class EvaluationListSerializer(serializers.Serializer):
    evaluations = serializers.ListField(
        child=serializers.DictField(),
        help_text="operation_id, status, created_at, strategy, symbol, start, end, folds, "
        "scheme, seeds, units_done, units_total, lift (mean, low, high) or null",
    )
