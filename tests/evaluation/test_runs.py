"""Evaluations on the runs table and the comparison page: sorted by their lift, compared by
their request and their lift per fold."""

from __future__ import annotations

import pytest

from evaluation import services
from operations.local import local_runs

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {
    "strategy": "test_small",
    "start": "2017-01-01",
    "end": "2017-04-01",
    "folds": 2,
    "seeds": 1,
    "epochs": 2,
}


def test_evaluations_are_runs_sorted_by_their_lift_and_compared_fold_by_fold(
    logged_in, strategies_dir, stored_bars
):
    a = services.evaluation_start(body=BODY)
    assert local_runs.wait_idle(timeout=120)
    b = services.evaluation_start(body={**BODY, "scheme": "rolling", "train_bars": 300})
    assert local_runs.wait_idle(timeout=120)
    listed = logged_in.get("/runs/?sort=lift_mean&order=desc")
    assert listed.status_code == 200
    html = listed.content.decode()
    assert a.operation_id in html
    assert b.operation_id in html
    assert "mean accuracy lift" in html
    compared = logged_in.get(f"/runs/compare/?ids={a.operation_id}&ids={b.operation_id}")
    assert compared.status_code == 200
    page = compared.content.decode()
    assert 'id="chart-compare-accuracy_lift"' in page
    assert "rolling" in page
    assert "expanding" in page
