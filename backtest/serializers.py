"""What the backtest API accepts and answers, for the schema (the checks live in
`backtest.params`, shared with the command and the page)."""

from __future__ import annotations

from rest_framework import serializers


class SizingSerializer(serializers.Serializer):
    method = serializers.ChoiceField(choices=["fixed", "volatility"], default="fixed")
    size = serializers.FloatField(default=1.0, help_text="fixed: |position| in units of equity")
    target_vol = serializers.FloatField(default=0.10, help_text="volatility: annualised target")
    lookback = serializers.IntegerField(default=20, help_text="volatility: bars of returns")
    max_leverage = serializers.FloatField(default=3.0)


class BacktestStartSerializer(serializers.Serializer):
    model_id = serializers.IntegerField(help_text="a trained model (/api/v1/training/models/)")
    symbol = serializers.CharField(required=False, help_text="default: the model's first")
    start = serializers.CharField(required=False, help_text="ISO date; default: stored start")
    end = serializers.CharField(required=False, help_text="ISO date (exclusive); default: last")
    cost_bps = serializers.FloatField(required=False, help_text="per unit traded, 0-1000")
    cost_pips = serializers.FloatField(required=False, help_text="or this, not both")
    slippage_bps = serializers.FloatField(required=False)
    slippage_pips = serializers.FloatField(required=False)
    pip_size = serializers.FloatField(required=False, help_text="default 0.0001 (0.01 for JPY)")
    sizing = SizingSerializer(required=False)
    on_hold = serializers.ChoiceField(choices=["keep", "flat"], required=False)
    signals = serializers.ChoiceField(choices=["model", "rule"], required=False)
    chunk_bars = serializers.IntegerField(required=False, help_text="bars per progress step")
    execution_mode = serializers.ChoiceField(
        choices=["auto", "local", "agent"], required=False, help_text="default local"
    )
    agent = serializers.CharField(required=False, help_text="an agent's name (a training agent)")


class TradesPageSerializer(serializers.Serializer):
    operation_id = serializers.CharField()
    status = serializers.CharField()
    total = serializers.IntegerField()
    kept = serializers.IntegerField()
    offset = serializers.IntegerField()
    limit = serializers.IntegerField()
    trades = serializers.ListField(
        child=serializers.DictField(),
        help_text="direction, entry_time, exit_time, entry_price, exit_price, bars, size, "
        "return (net of costs), open",
    )


class BacktestListSerializer(serializers.Serializer):
    backtests = serializers.ListField(
        child=serializers.DictField(),
        help_text="operation_id, status, created_at, model, symbol, start, end, in_sample, "
        "figures (or null), baselines (their total returns, or null)",
    )
