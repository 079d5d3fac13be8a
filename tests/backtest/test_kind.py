"""The `backtest` kind through the real engine: a real small model on real stored bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest import services
from backtest.kinds import BACKTEST, BacktestProgressBridge
from backtest.runner import MAX_TRADES_IN_SUMMARY
from operations.cancellation import CancellationToken, OperationCancelled
from operations.exceptions import InvalidInput
from operations.execution import operation_cancel, operation_submit
from operations.kinds import OperationKind, kind_get, register_kind, unregister_kind
from operations.local import WorkContext, local_runs
from operations.models import Operation, OperationMetric
from training.predict import ModelPredictor
from training.selectors import trained_model_file

pytestmark = pytest.mark.django_db(transaction=True)


def finished(op) -> Operation:
    assert local_runs.wait_idle(timeout=120)
    return Operation.objects.get(pk=op.pk)


def test_a_backtest_runs_the_model_out_of_sample_with_baselines(model, user):
    op = services.backtest_start(
        body={"model_id": model.pk, "start": "2017-08-01", "end": "2017-12-01", "cost_bps": 1},
        user=user,
    )
    op = finished(op)
    assert op.status == "completed", op.error_message
    summary = op.result_summary
    f = summary["figures"]
    assert summary["bars_done"] == summary["bars_total"] > 2000
    assert summary["first_bar"].startswith("2017-08-01")
    assert summary["in_sample"]["overlaps"] is False
    assert summary["warnings"] == []
    for key in ("total_return", "annualised_return", "annualised_volatility", "max_drawdown"):
        assert np.isfinite(f[key])
    assert f["costs_paid"] == pytest.approx(f["turnover"] * 1e-4)
    assert set(summary["baselines"]) == {"buy_and_hold", "rule"}
    assert summary["baselines"]["rule"]["name"] == "zigzag_known"
    # Buy-and-hold: in from the first bar's close to the last, one entry cost.
    closes = pd.Series(summary["curve"]["buy_and_hold"])
    assert summary["baselines"]["buy_and_hold"]["position_changes"] == 1
    assert closes.iloc[-1] == pytest.approx(
        1 + summary["baselines"]["buy_and_hold"]["total_return"]
    )
    assert len(summary["curve"]["time"]) <= 1001
    assert len(summary["trades"]) <= MAX_TRADES_IN_SUMMARY
    assert summary["trades_total"] == f["trades"]
    # The run is one of the runs compared on /runs/.
    assert {fig.name for fig in op.figures.all()} >= {"total_return", "sharpe", "trades"}


def test_the_model_s_signals_are_its_predictions_one_bar_later(model, stored_bars, user):
    op = finished(
        services.backtest_start(
            body={"model_id": model.pk, "start": "2017-09-01", "end": "2017-10-01"}, user=user
        )
    )
    trades = op.result_summary["trades"]
    predictor = ModelPredictor.from_file(trained_model_file(model))
    predicted = predictor.predict({"1h": stored_bars[stored_bars.index < "2017-10-01"]})
    first = trades[0]
    # A trade's entry fills at the close of the bar whose prediction asked for it.
    entry = pd.Timestamp(first["entry_time"])
    wanted = "BUY" if first["direction"] == "long" else "SELL"
    assert predicted.loc[entry, "signal"] == wanted


def test_a_range_overlapping_the_training_data_is_flagged_in_sample(model, user):
    op = finished(
        services.backtest_start(
            body={"model_id": model.pk, "start": "2017-06-01", "end": "2017-08-01"}, user=user
        )
    )
    summary = op.result_summary
    assert summary["in_sample"]["overlaps"] is True
    assert 0 < summary["in_sample"]["share_in_training_range"] < 1
    assert summary["warnings"][0].startswith("in-sample:")
    assert kind_get("backtest").describe_outcome(op).endswith("(in-sample)")


def test_the_rule_alone_runs_without_the_model_s_predictions(model, user):
    op = finished(
        services.backtest_start(
            body={
                "model_id": model.pk,
                "start": "2017-08-01",
                "end": "2017-12-01",
                "signals": "rule",
                "sizing": {"method": "volatility", "target_vol": 0.05},
            },
            user=user,
        )
    )
    summary = op.result_summary
    assert op.status == "completed"
    # Same rule, same sizing, same costs: the strategy is its own rule baseline.
    assert summary["figures"]["total_return"] == pytest.approx(
        summary["baselines"]["rule"]["total_return"]
    )


class CancelAfterChunks(BacktestProgressBridge):
    """Asks for a cancel after the n-th simulated chunk, as a reader's request would arrive."""

    __slots__ = ("after", "chunks", "token")

    def __init__(self, token: CancellationToken, after: int) -> None:
        super().__init__()
        self.token, self.after, self.chunks = token, after, 0

    def append_metric(self, kind, payload) -> None:
        super().append_metric(kind, payload)
        if kind == "chunk":
            self.chunks += 1
            if self.chunks == self.after:
                self.token.cancel("test")


def test_a_cancel_mid_run_stops_at_a_chunk_and_keeps_the_partial_result(model, user):
    metadata = services.backtest_metadata(
        body={"model_id": model.pk, "start": "2017-08-01", "end": "2017-12-01", "chunk_bars": 200}
    )
    launch = kind_get("backtest").prepare(metadata, None)
    token = CancellationToken()
    bridge = CancelAfterChunks(token, after=3)
    ctx = WorkContext(operation_id="op_test", metadata=launch.metadata, bridge=bridge, token=token)
    with pytest.raises(OperationCancelled) as info:
        launch.work(ctx)
    partial = info.value.partial_result
    assert info.value.stop_point == f"bar 600/{partial['bars_total']}"
    assert partial["partial"] is True
    assert partial["bars_done"] == 600
    assert partial["figures"]["bars"] == 600
    assert partial["baselines"]["buy_and_hold"]["bars"] == 600
    assert partial["warnings"][-1].startswith("cancelled: the figures cover 600 of")


class CancelThroughTheService(BacktestProgressBridge):
    """After the n-th chunk, cancels its operation through the one cancel path (as the API and
    `ops cancel` do); the worker sees it at the next chunk boundary."""

    __slots__ = ("chunks",)

    def __init__(self) -> None:
        super().__init__()
        self.chunks = 0

    def append_metric(self, kind, payload) -> None:
        super().append_metric(kind, payload)
        if kind == "chunk":
            self.chunks += 1
            if self.chunks == 2:
                op = Operation.objects.get(operation_type=PROBE)
                operation_cancel(operation_id=op.operation_id, reason="enough", user=None)


PROBE = "backtest_cancel_probe"


@pytest.fixture
def probe_kind():
    """The backtest kind with the bridge above, registered under its own name."""

    def prepare(metadata, inputs):
        launch = BACKTEST.prepare(metadata, inputs)
        launch.bridge = CancelThroughTheService()
        return launch

    register_kind(OperationKind(name=PROBE, prepare=prepare, stays_local=lambda _m: True))
    yield PROBE
    unregister_kind(PROBE)


def test_a_cancelled_operation_ends_cancelled_with_its_partial_result(model, user, probe_kind):
    metadata = services.backtest_metadata(
        body={"model_id": model.pk, "start": "2017-08-01", "end": "2017-12-01", "chunk_bars": 100}
    )
    op = operation_submit(
        operation_type=probe_kind, metadata=metadata, execution_mode="local", user=user
    )
    op = finished(op)
    assert op.status == "cancelled"
    summary = op.result_summary
    assert summary["partial"] is True
    assert summary["bars_done"] == 200
    assert summary["bars_done"] < summary["bars_total"]
    assert summary["figures"]["bars"] == 200
    trades = OperationMetric.objects.filter(operation=op, kind="trade").count()
    assert trades == summary["trades_total"]
    assert summary["stopped_at"] == f"bar 200/{summary['bars_total']}"


def test_the_model_s_prediction_at_t_uses_no_bar_after_t(model, stored_bars):
    predictor = ModelPredictor.from_file(trained_model_file(model))
    bars = stored_bars[stored_bars.index < "2017-10-01"]
    full = predictor.predict({"1h": bars})
    for k in (len(bars) - 500, len(bars) - 137, len(bars) - 1):
        cut = predictor.predict({"1h": bars.iloc[: k + 1]})
        t = bars.index[k]
        assert cut.index[-1] == t
        assert cut.loc[t, "signal"] == full.loc[t, "signal"]
        assert cut.loc[t, "p_BUY"] == pytest.approx(full.loc[t, "p_BUY"], abs=1e-6)


def test_a_range_with_no_stored_bars_is_refused_at_the_start(model):
    with pytest.raises(InvalidInput) as info:
        services.backtest_start(body={"model_id": model.pk, "start": "2019-01-01"})
    assert info.value.field == "start"
    assert "stored: 2017-01-02 to 2017-12-29" in info.value.message


def test_a_range_too_long_is_refused_at_the_start(model, settings):
    settings.KTRDR = {**settings.KTRDR, "BACKTEST_MAX_BARS": 1000}
    with pytest.raises(InvalidInput) as info:
        services.backtest_start(body={"model_id": model.pk})
    assert info.value.field == "end"


def test_a_symbol_with_no_stored_bars_is_refused_at_the_start(model):
    with pytest.raises(InvalidInput) as info:
        services.backtest_start(body={"model_id": model.pk, "symbol": "GBPUSD"})
    assert info.value.field == "symbol"
