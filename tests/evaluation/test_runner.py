"""A real walk-forward evaluation (evaluation.runner) on small data: each fold trains on its
own rows with the training pipeline and scores its test rows; cancel keeps the finished folds;
a failing fold fails the run naming it; carried folds are not run again and give the same
aggregate; on a random walk the lift's interval holds 0."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from evaluation.bridge import EvaluationProgressBridge
from evaluation.folds import plan_folds
from evaluation.runner import EvaluationError
from operations.cancellation import CancellationToken, OperationCancelled
from tests.evaluation.conftest import run, small_metadata
from tests.training.conftest import SMALL_STRATEGY, make_loader
from tests.training.test_evaluation import random_walk_bars
from training.bridge import TrainingProgressBridge


class CancelAfter(EvaluationProgressBridge):
    """Cancels its token once `after` fold records are in (a reader's cancel between folds)."""

    __slots__ = ("after", "token")

    def __init__(self, token: CancellationToken, after: int) -> None:
        super().__init__()
        self.token, self.after = token, after

    def append_metric(self, kind, payload):
        super().append_metric(kind, payload)
        if kind == "fold" and self.metrics_count >= self.after:
            self.token.cancel("enough")


def test_each_fold_trains_before_its_purge_and_scores_its_own_test_rows(eurusd, tmp_path):
    meta = small_metadata(purge_bars=30, embargo_bars=30)
    result, bridge = run(meta, make_loader(eurusd))
    rows = result["data"]["rows"]
    plan = plan_folds(rows, folds=3, purge_bars=30, embargo_bars=30)
    assert result["plan"] == [f.as_dict() for f in plan]
    assert result["units_done"] == result["units_total"] == 3
    assert result["partial"] is False
    assert result["models_saved"] is False
    for record, fold in zip(result["fold_results"], plan, strict=True):
        assert record["test"]["rows"] == fold.test[1] - fold.test[0]
        gap = pd.Timestamp(record["test"]["first"]) - pd.Timestamp(record["validation"]["last"])
        assert gap >= pd.Timedelta(hours=30)  # at least the purge, in hourly rows
        assert record["samples"] <= record["test"]["rows"]
        assert record["accuracy"] == pytest.approx(
            record["majority_rate"] + record["accuracy_lift"], abs=2e-6
        )
        assert record["log_loss_lift"] == pytest.approx(
            record["prior_log_loss"] - record["log_loss"], abs=2e-6
        )
        assert record["epochs_run"] == 2
    records, _ = bridge.metrics_since(0)
    assert [r["kind"] for r in records] == ["fold"] * 3
    assert [r["accuracy_lift"] for r in records] == [
        r["accuracy_lift"] for r in result["fold_results"]
    ]
    agg = result["aggregate"]
    lifts = [r["accuracy_lift"] for r in result["fold_results"]]
    assert agg["figures"]["accuracy_lift"]["mean"] == pytest.approx(np.mean(lifts))
    assert agg["ci"]["accuracy_lift"]["low"] <= np.mean(lifts) <= agg["ci"]["accuracy_lift"]["high"]
    assert bridge.snapshot()["phase"] == "aggregating"


def test_seeds_multiply_the_runs_and_the_same_seeds_give_the_same_figures(eurusd):
    meta = small_metadata(folds=2, seeds=[5, 9])
    a, _ = run(meta, make_loader(eurusd))
    b, _ = run(meta, make_loader(eurusd))
    assert [(r["fold"], r["seed"]) for r in a["fold_results"]] == [(1, 5), (1, 9), (2, 5), (2, 9)]
    assert a["aggregate"] == b["aggregate"]
    assert a["aggregate"]["seeds"] == 2
    assert a["aggregate"]["ci"]["accuracy_lift"]["folds"] == 2


def test_a_cancel_between_folds_ends_with_the_finished_folds_and_their_aggregate(eurusd):
    token = CancellationToken()
    with pytest.raises(OperationCancelled) as caught:
        run(small_metadata(), make_loader(eurusd), bridge=CancelAfter(token, 1), token=token)
    partial = caught.value.partial_result
    assert caught.value.stop_point.startswith("fold 2 of 3")
    assert partial["partial"] is True
    assert (partial["units_done"], partial["units_total"]) == (1, 3)
    assert [r["fold"] for r in partial["fold_results"]] == [1]
    assert partial["aggregate"]["folds"] == 1
    assert "1 of 3" in partial["warnings"][0]


def test_a_cancel_inside_a_fold_stops_at_the_executors_next_check_keeping_the_folds_before(
    eurusd,
):
    token = CancellationToken()

    class CancelInSecondFold(EvaluationProgressBridge):
        __slots__ = ()

        def start_unit(self, inner: TrainingProgressBridge, **kwargs) -> None:
            super().start_unit(inner, **kwargs)
            if kwargs["done"] == 1:
                token.cancel("mid-fold")

    with pytest.raises(OperationCancelled) as caught:
        run(small_metadata(), make_loader(eurusd), bridge=CancelInSecondFold(), token=token)
    # Where the training executor saw it (before the model, every batch, after each epoch).
    assert caught.value.stop_point == "fold 2 of 3 · seed 1 of 1, build model"
    assert caught.value.partial_result["units_done"] == 1


def flat_at_the_end(n: int = 2200, flat: int = 150) -> pd.DataFrame:
    """A random walk whose last `flat` bars barely move (no zigzag leg there)."""
    bars = random_walk_bars(n, seed=11)
    rng = np.random.default_rng(2)
    last = bars["close"].iloc[-flat - 1]
    close = last * (1 + np.cumsum(rng.normal(0, 1e-6, flat)))
    tail = bars.index[-flat:]
    bars.loc[tail, "close"] = close
    bars.loc[tail, "open"] = np.concatenate(([last], close[:-1]))
    bars.loc[tail, "high"] = np.maximum(bars.loc[tail, "open"], close) + 1e-6
    bars.loc[tail, "low"] = np.minimum(bars.loc[tail, "open"], close) - 1e-6
    return bars


def test_a_failing_fold_fails_the_run_naming_it_and_keeps_the_folds_before(eurusd):
    raw = copy.deepcopy(SMALL_STRATEGY)
    raw["training_data"]["history"] = {"start": None, "end": None}
    meta = small_metadata(raw, start=None, end=None, test_bars=120)
    bridge = EvaluationProgressBridge()
    with pytest.raises(EvaluationError) as caught:
        run(meta, make_loader(flat_at_the_end()), bridge=bridge)
    assert str(caught.value).startswith("fold 3 of 3 · seed 1 of 1 failed: ")
    assert "not enough labelled rows in the test split" in str(caught.value)
    kept = bridge.final_result
    assert kept["partial"] is True
    assert [r["fold"] for r in kept["fold_results"]] == [1, 2]


def test_carried_folds_are_not_run_again_and_give_the_same_aggregate(eurusd):
    meta = small_metadata(folds=3, seeds=[1, 2])
    whole, _ = run(meta, make_loader(eurusd))
    token = CancellationToken()
    with pytest.raises(OperationCancelled) as caught:
        run(meta, make_loader(eurusd), bridge=CancelAfter(token, 3), token=token)
    carried = caught.value.partial_result["fold_results"]
    assert len(carried) == 3
    resumed, bridge = run({**meta, "prior_folds": carried}, make_loader(eurusd))
    records, _ = bridge.metrics_since(0)
    # Every run is charted; only the 3 runs not carried were trained: (2, 2), (3, 1), (3, 2).
    assert [(r["fold"], r["seed"]) for r in records] == [
        (1, 1),
        (1, 2),
        (2, 1),
        (2, 2),
        (3, 1),
        (3, 2),
    ]
    trained = [(r["fold"], r["seed"]) for r in records if not r.get("carried")]
    assert trained == [(2, 2), (3, 1), (3, 2)]
    assert resumed["fold_results"] == whole["fold_results"]
    assert resumed["aggregate"] == whole["aggregate"]


def test_carried_folds_of_another_plan_are_refused(eurusd):
    meta = small_metadata(folds=2)
    whole, _ = run(meta, make_loader(eurusd))
    moved = {**whole["fold_results"][0], "test": {"first": "x", "last": "y", "rows": 1}}
    with pytest.raises(Exception, match="test range differs"):
        run({**meta, "prior_folds": [moved]}, make_loader(eurusd))


def random_walk_metadata(threshold: float, class_weights: str) -> dict:
    raw = copy.deepcopy(SMALL_STRATEGY)
    raw["training_data"]["history"] = {"start": None, "end": None}
    raw["labels"] = {"type": "forward_return", "horizon": 6, "threshold": threshold}
    raw["model"]["training"]["class_weights"] = class_weights
    return small_metadata(raw, start=None, end=None, folds=5, seeds=2, epochs=4)


@pytest.mark.parametrize("walk", [5, 6, 7])
def test_on_a_random_walk_the_lift_interval_contains_zero(walk):
    """Unweighted, with HOLD the majority class: the model learns the majority, so its
    accuracy lift is about 0 and the interval holds 0; no interval lies above 0."""
    meta = random_walk_metadata(0.003, "none")
    assert meta["purge_bars"] == meta["embargo_bars"] == 6  # the label horizon by default
    result, _ = run(meta, make_loader(random_walk_bars(seed=walk)))
    lift = result["aggregate"]["ci"]["accuracy_lift"]
    assert lift["low"] <= 0.0 <= lift["high"], lift
    assert abs(lift["mean"]) < 0.05
    assert result["aggregate"]["ci"]["log_loss_lift"]["low"] <= 0.0


@pytest.mark.parametrize("walk", [5, 6, 7])
def test_on_a_random_walk_no_skill_shows_and_the_log_loss_lift_interval_contains_zero(walk):
    """Balanced classes and weights: the model predicts every class. Its log-loss lift (against
    the training prior) has an interval holding 0; its accuracy lift (against the test fold's
    own majority rate, the best constant in hindsight) is at most about 0: a model without skill
    that does not always say the majority class scores below it, never above."""
    result, _ = run(
        random_walk_metadata(0.0015, "balanced"), make_loader(random_walk_bars(seed=walk))
    )
    ci = result["aggregate"]["ci"]
    assert ci["log_loss_lift"]["low"] <= 0.0 <= ci["log_loss_lift"]["high"], ci
    assert ci["accuracy_lift"]["high"] < 0.02, ci
    assert abs(ci["log_loss_lift"]["mean"]) < 0.05


def test_progress_names_the_fold_and_seed_and_measures_its_eta_from_finished_runs():
    now = [100.0]
    bridge = EvaluationProgressBridge(clock=lambda: now[0])
    inner = TrainingProgressBridge()
    inner.on_phase("training", "epoch 1/2", percentage=50.0)
    bridge.start_unit(
        inner, done=2, total=4, label="fold 2 of 2 · seed 1 of 2", started=75.0, ran=2
    )
    snap = bridge.snapshot()
    assert snap["phase"] == "fold 2 of 2 · seed 1 of 2"
    assert snap["message"] == "epoch 1/2"
    assert snap["percentage"] == pytest.approx(62.5)
    # 25 s for 2.5 runs: 10 s a run, 1.5 runs left.
    assert snap["eta_seconds"] == pytest.approx(15.0)
    bridge.start_unit(
        inner, done=0, total=4, label="fold 1 of 2 · seed 1 of 2", started=100.0, ran=0
    )
    assert bridge.snapshot()["eta_seconds"] is None  # nothing finished yet: no promise


def test_a_test_fraction_sizes_every_test_fold_from_the_rows_after_the_warm_up(eurusd):
    result, _ = run(small_metadata(folds=2, test_fraction=0.2), make_loader(eurusd))
    rows = result["data"]["rows"]
    assert [r["test"]["rows"] for r in result["fold_results"]] == [round(0.2 * rows)] * 2
    assert result["plan"][-1]["test"][1] == rows
