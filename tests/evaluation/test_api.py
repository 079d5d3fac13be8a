"""The evaluation API: a validated start answers 202 and its folds and aggregate follow; bad
input is a 400 naming the field; the list shows each evaluation's interval."""

from __future__ import annotations

import pytest

from operations.local import local_runs
from operations.models import Operation

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/evaluations/"
BODY = {
    "strategy": "test_small",
    "start": "2017-01-01",
    "end": "2017-04-01",
    "folds": 3,
    "seeds": 2,
    "epochs": 2,
}


def test_a_start_answers_202_and_the_folds_and_their_aggregate_follow(
    api, strategies_dir, stored_bars
):
    answer = api.post(URL, {**BODY, "scheme": "rolling", "train_bars": 400}, format="json")
    assert answer.status_code == 202, answer.json()
    body = answer.json()
    assert body["operation_type"] == "evaluation"
    meta = body["metadata"]
    assert meta["seeds"] == [3, 4]  # the strategy's seed and the next
    assert meta["purge_bars"] == meta["embargo_bars"] == 24  # zigzag labels: a day of rows
    assert body["location"]["executor"] == "local"
    assert local_runs.wait_idle(timeout=120)
    op_id = body["operation_id"]
    results = api.get(f"/api/v1/operations/{op_id}/results/").json()
    assert results["status"] == "completed", results
    summary = results["result_summary"]
    assert summary["units_done"] == summary["units_total"] == 6
    assert [(r["fold"], r["seed"]) for r in summary["fold_results"]] == [
        (f, s) for f in (1, 2, 3) for s in (3, 4)
    ]
    assert all(r["train"]["rows"] + r["validation"]["rows"] == 400 for r in summary["fold_results"])
    ci = summary["aggregate"]["ci"]["accuracy_lift"]
    assert ci["low"] <= ci["mean"] <= ci["high"]
    assert ci["folds"] == 3
    metrics = api.get(f"/api/v1/operations/{op_id}/metrics/?kind=fold").json()["metrics"]
    assert [m["unit"] for m in metrics] == [1, 2, 3, 4, 5, 6]
    listed = api.get(URL).json()["evaluations"]
    assert listed[0]["operation_id"] == op_id
    assert listed[0]["lift"] == ci
    assert listed[0]["units_done"] == 6


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"strategy": None}, "strategy"),
        ({"strategy": "no_such_strategy"}, "strategy"),
        ({"folds": 1}, "folds"),
        ({"folds": 21}, "folds"),
        ({"folds": "many"}, "folds"),
        ({"scheme": "sideways"}, "scheme"),
        ({"seeds": 0}, "seeds"),
        ({"seeds": 11}, "seeds"),
        ({"seeds": [1, 1]}, "seeds"),
        ({"seeds": [-1]}, "seeds"),
        ({"test_bars": 5}, "test_bars"),
        ({"test_bars": 100, "test_fraction": 0.1}, "test_fraction"),
        ({"train_bars": 10}, "train_bars"),
        ({"purge_bars": -1}, "purge_bars"),
        ({"embargo_bars": 10**9}, "embargo_bars"),
        ({"epochs": 0}, "epochs"),
        ({"bootstrap": {"resamples": 5}}, "bootstrap.resamples"),
        ({"bootstrap": {"confidence": 1.5}}, "bootstrap.confidence"),
        ({"bootstrap": "lots"}, "bootstrap"),
        ({"bootstrap": {"samples": 9}}, "bootstrap.samples"),
        ({"timeframe": ["1h"]}, "timeframe"),
        ({"scheme": ["rolling"]}, "scheme"),
        ({"seeds": {"a": 1}}, "seeds"),
        ({"symbol": 7}, "symbol"),
        ({"start": "yesterday-ish"}, "start"),
        ({"start": "2017-03-01", "end": "2017-02-01"}, "end"),
        ({"symbol": "GBPUSD"}, "symbol"),
        ({"timeframe": "4h"}, "timeframe"),
        ({"execution_mode": "somewhere"}, "execution_mode"),
        ({"agent": "bad name!"}, "agent"),
        ({"colour": "red"}, "colour"),
        # Stored bars hold ~1,500 rows in a quarter: 10 folds of 200 test rows cannot fit.
        ({"folds": 10, "test_bars": 200}, "start"),
        # A range outside the stored bars says what is stored.
        ({"start": "2010-01-01", "end": "2011-01-01"}, "start"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api, strategies_dir, stored_bars, change, field):
    body = {k: v for k, v in {**BODY, **change}.items() if v is not None}
    answer = api.post(URL, body, format="json")
    assert answer.status_code == 400, answer.json()
    error = answer.json()["error"]
    assert field in error["details"], error
    if change.get("start") == "2010-01-01":
        assert "stored: " in error["message"], error
    assert Operation.objects.count() == 0


def test_a_purge_shorter_than_the_label_horizon_is_refused(api, strategies_dir, stored_bars):
    path = strategies_dir / "test_small.yaml"
    path.write_text(
        path.read_text().replace(
            "type: zigzag\n  threshold: 0.003", "type: forward_return\n  horizon: 12"
        )
    )
    answer = api.post(URL, {**BODY, "purge_bars": 6}, format="json")
    assert answer.status_code == 400, answer.json()
    assert "label horizon (12 bars)" in answer.json()["error"]["message"]
