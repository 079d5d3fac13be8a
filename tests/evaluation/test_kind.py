"""The `evaluation` kind through the operations engine: cancel keeps the finished folds, a
resume runs only the rest, re-run, the runs table's figures, the outcome sentence."""

from __future__ import annotations

import time

import pytest

from evaluation import services
from evaluation.kinds import EVALUATION, resume_metadata
from operations import selectors
from operations.exceptions import Conflict, InvalidInput
from operations.execution import operation_cancel, operation_rerun, operation_resume
from operations.kinds import kind_get
from operations.local import local_runs
from operations.models import Operation, OperationMetric, RunFigure
from operations.readable import operation_outcome

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {
    "strategy": "test_small",
    "start": "2017-01-01",
    "end": "2017-04-01",
    "folds": 3,
    "seeds": 1,
    "epochs": 2,
}


def finished(op: Operation) -> Operation:
    assert local_runs.wait_idle(timeout=120)
    return Operation.objects.get(pk=op.pk)


def test_the_kind_is_registered_with_the_training_capability():
    kind = kind_get("evaluation")
    assert kind is EVALUATION
    assert kind.capability({}) == "training"
    assert kind.prefers_gpu is True
    assert {c.key for c in kind.run_columns} >= {"lift_mean", "lift_ci_low", "lift_ci_high"}


def test_a_finished_evaluation_says_its_lift_and_interval_and_stores_its_figures(
    strategies_dir, stored_bars
):
    op = finished(services.evaluation_start(body=BODY))
    assert op.status == "completed", op.error_message
    ci = op.result_summary["aggregate"]["ci"]["accuracy_lift"]
    outcome = operation_outcome(op)
    assert "over 3 folds × 1 seed" in outcome
    assert outcome.endswith("1 seed")
    assert f"{100 * ci['mean']:+.1f}".replace("-", "\u2212") in outcome
    figures = dict(RunFigure.objects.filter(operation=op).values_list("name", "value"))
    assert figures["lift_mean"] == pytest.approx(ci["mean"])
    assert figures["lift_ci_low"] == pytest.approx(ci["low"])
    assert figures["folds_done"] == 3


def wait_for_folds(op_id: str, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        selectors.operation_get(operation_id=op_id, force_refresh=True)
        folds = OperationMetric.objects.filter(operation__operation_id=op_id, kind="fold")
        if folds.count() >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"{op_id} recorded fewer than {count} folds")


def test_a_cancel_keeps_the_finished_folds_and_a_resume_runs_only_the_rest(
    strategies_dir, stored_bars
):
    # Slow enough folds (the slow strategy's small batches) that the cancel lands in fold 2.
    body = {**BODY, "strategy": "test_slow", "epochs": 30}
    op = services.evaluation_start(body=body)
    wait_for_folds(op.operation_id, 1)
    operation_cancel(operation_id=op.operation_id, reason="enough")
    op = finished(op)
    assert op.status == "cancelled"
    summary = op.result_summary
    done = summary["units_done"]
    assert summary["partial"] is True
    assert 1 <= done < 3
    assert [r["fold"] for r in summary["fold_results"]] == list(range(1, done + 1))
    assert summary["aggregate"]["folds"] == done
    assert operation_outcome(op).startswith(f"Cancelled after {done} of 3 runs: lift ")

    meta = resume_metadata(op)
    assert len(meta["prior_folds"]) == done
    again = finished(operation_resume(operation_id=op.operation_id))
    assert again.status == "completed", again.error_message
    assert again.metadata["resume_of"] == op.operation_id
    assert again.resumed_from_id == op.pk
    # Every fold is charted, the carried ones marked; only the others were trained.
    records = OperationMetric.objects.filter(operation=again, kind="fold").order_by("seq")
    assert [m.payload["fold"] for m in records] == [1, 2, 3]
    assert [m.payload.get("carried", False) for m in records] == [True] * done + [False] * (
        3 - done
    )
    assert [r["fold"] for r in again.result_summary["fold_results"]] == [1, 2, 3]
    assert again.result_summary["fold_results"][:done] == summary["fold_results"]

    # The whole evaluation at once gives the same folds and aggregate.
    whole = finished(services.evaluation_start(body=body))
    assert whole.result_summary["fold_results"] == again.result_summary["fold_results"]
    assert whole.result_summary["aggregate"] == again.result_summary["aggregate"]


def test_only_a_cancelled_or_failed_evaluation_resumes(strategies_dir, stored_bars):
    op = finished(services.evaluation_start(body=BODY))
    with pytest.raises(InvalidInput, match="only a cancelled or failed evaluation resumes"):
        resume_metadata(op)


def test_a_rerun_starts_the_same_request_again(strategies_dir, stored_bars):
    first = finished(services.evaluation_start(body={**BODY, "scheme": "rolling"}))
    again = finished(operation_rerun(operation_id=first.operation_id))
    assert again.metadata["rerun_of"] == first.operation_id
    assert again.metadata["scheme"] == "rolling"
    assert again.result_summary["fold_results"] == first.result_summary["fold_results"]
    edit = EVALUATION.edit_url(first.metadata)
    assert edit.startswith("/evaluations/?")
    assert "scheme=rolling" in edit


def test_a_failed_fold_fails_the_operation_with_the_reason(strategies_dir, stored_bars):
    # Zigzag labels of 3 % swings: the quarter's short folds hold too few labelled rows.
    path = strategies_dir / "test_small.yaml"
    path.write_text(path.read_text().replace("threshold: 0.003", "threshold: 0.03"))
    op = finished(services.evaluation_start(body=BODY))
    assert op.status == "failed"
    assert "fold 1 of 3 · seed 1 of 1 failed: not enough labelled rows" in op.error_message
    assert op.result_summary["partial"] is True


def test_an_evaluation_that_finished_no_fold_has_nothing_to_resume(strategies_dir, stored_bars):
    body = {**BODY, "strategy": "test_slow", "epochs": 30}
    op = services.evaluation_start(body=body)
    operation_cancel(operation_id=op.operation_id, reason="changed my mind")
    op = finished(op)
    assert op.status == "cancelled"
    assert not op.result_summary or not op.result_summary.get("fold_results")
    with pytest.raises(Conflict, match="finished no fold"):
        operation_resume(operation_id=op.operation_id)
