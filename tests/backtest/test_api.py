"""The backtest API: a validated start answers 202 with the operation; bad input is a 400
naming the field; the trades come in pages."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from operations.local import local_runs
from operations.models import Operation

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/backtests/"


def test_a_start_answers_202_with_the_operation_and_its_result_follows(api, model):
    answer = api.post(
        URL,
        {
            "model_id": model.pk,
            "start": "2017-08-01",
            "end": "2017-10-01",
            "cost_pips": 0.5,
            "slippage_bps": 0.2,
            "sizing": {"method": "volatility", "target_vol": 0.08},
        },
        format="json",
    )
    assert answer.status_code == 202, answer.json()
    body = answer.json()
    assert body["operation_type"] == "backtest"
    assert local_runs.wait_idle(timeout=120)
    op_id = body["operation_id"]
    results = api.get(f"/api/v1/operations/{op_id}/results/").json()
    assert results["status"] == "completed"
    summary = results["result_summary"]
    assert summary["figures"]["trades"] == summary["trades_total"]
    page = api.get(f"{URL}{op_id}/trades/?offset=1&limit=2").json()
    assert page["total"] == summary["trades_total"]
    assert page["trades"] == summary["trades"][1:3]
    assert set(page["trades"][0]) >= {"direction", "entry_time", "exit_time", "return", "open"}
    # Every trade is a record: the pages reach past what the summary keeps.
    assert page["kept"] == summary["trades_total"]
    everything = []
    for offset in range(0, page["kept"], 7):
        everything += api.get(f"{URL}{op_id}/trades/?offset={offset}&limit=7").json()["trades"]
    assert everything[: len(summary["trades"])] == summary["trades"]
    assert len(everything) == summary["trades_total"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"model_id": None}, "model_id"),
        ({"model_id": "seven"}, "model_id"),
        ({"model_id": 99999}, "model_id"),
        ({"start": "yesterday-ish"}, "start"),
        ({"start": "2017-10-01", "end": "2017-09-01"}, "end"),
        ({"cost_bps": -1}, "cost_bps"),
        ({"cost_bps": 5000}, "cost_bps"),
        ({"cost_bps": "NaN"}, "cost_bps"),
        ({"cost_bps": 1, "cost_pips": 1}, "cost_pips"),
        ({"slippage_pips": -0.1}, "slippage_pips"),
        ({"sizing": {"method": "kelly"}}, "sizing.method"),
        ({"sizing": {"method": "volatility", "target_vol": 0}}, "sizing.target_vol"),
        ({"sizing": {"lookback": 1}}, "sizing.lookback"),
        ({"sizing": {"leverage": 2}}, "sizing.leverage"),
        ({"sizing": [1]}, "sizing"),
        ({"signals": "oracle"}, "signals"),
        ({"on_hold": "sell"}, "on_hold"),
        ({"symbol": "EUR USD"}, "symbol"),
        ({"pip_size": 0}, "pip_size"),
        ({"chunk_bars": 10}, "chunk_bars"),
        ({"execution_mode": "cloud"}, "execution_mode"),
        ({"agent": "nobody"}, "agent"),
        ({"agent": 7}, "agent"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api, model, change, field):
    body = {"model_id": model.pk, "start": "2017-08-01", "end": "2017-10-01", **change}
    answer = api.post(URL, body, format="json")
    assert answer.status_code == 400, answer.json()
    error = answer.json()["error"]
    assert list(error["details"]) == [field], error
    assert not Operation.objects.filter(operation_type="backtest").exists()


def test_a_body_that_is_not_an_object_is_a_400(api):
    answer = api.post(URL, [1, 2], format="json")
    assert answer.status_code == 400


def test_the_api_needs_a_login():
    assert APIClient().post(URL, {"model_id": 1}, format="json").status_code == 401


def test_trades_of_another_kind_or_bad_pages_are_refused(api, model):
    op_id = api.post(
        "/api/v1/operations/countdown/", {"steps": 1, "step_seconds": 0}, format="json"
    ).json()["operation_id"]
    assert local_runs.wait_idle(timeout=30)
    assert api.get(f"{URL}{op_id}/trades/").status_code == 404
    assert api.get(f"{URL}op_nope/trades/").status_code == 404
    started = api.post(URL, {"model_id": model.pk, "start": "2017-08-01"}, format="json").json()
    assert local_runs.wait_idle(timeout=120)
    answer = api.get(f"{URL}{started['operation_id']}/trades/?limit=100000")
    assert answer.status_code == 400
    assert "limit" in answer.json()["error"]["details"]


def test_the_list_shows_the_latest_backtests_with_their_figures(api, model):
    api.post(URL, {"model_id": model.pk, "start": "2017-08-01"}, format="json")
    assert local_runs.wait_idle(timeout=120)
    (row,) = api.get(URL).json()["backtests"]
    assert row["status"] == "completed"
    assert "sharpe" in row["figures"]


def test_a_finished_backtest_runs_again_with_the_same_inputs_and_is_a_run(api, model, logged_in):
    first = api.post(
        URL, {"model_id": model.pk, "start": "2017-08-01", "cost_bps": 2}, format="json"
    ).json()
    assert local_runs.wait_idle(timeout=120)
    again = api.post(f"/api/v1/operations/{first['operation_id']}/rerun/")
    assert again.status_code == 202, again.json()
    assert local_runs.wait_idle(timeout=120)
    a = Operation.objects.get(operation_id=first["operation_id"])
    b = Operation.objects.get(operation_id=again.json()["operation_id"])
    assert b.metadata["rerun_of"] == a.operation_id
    assert b.result_summary["figures"] == a.result_summary["figures"]
    runs = logged_in.get("/runs/?kind=backtest").content.decode()
    assert a.operation_id in runs
    assert b.operation_id in runs
