"""The backtest panel of the operation page: charts, warnings, figures and trades."""

from __future__ import annotations

import json
import re

import pytest

from backtest import services
from operations.local import local_runs
from operations.models import Operation

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_operation_page_draws_equity_and_drawdown_and_lists_the_trades(logged_in, model):
    op = services.backtest_start(
        body={"model_id": model.pk, "start": "2017-06-15", "end": "2017-09-01", "cost_bps": 1}
    )
    assert local_runs.wait_idle(timeout=120)
    op = Operation.objects.get(pk=op.pk)
    html = logged_in.get(f"/operations/{op.operation_id}/").content.decode()
    assert 'id="chart-equity"' in html
    assert 'id="chart-drawdown"' in html
    config = json.loads(
        re.search(r'id="chart-equity" data-chart="([^"]+)"', html).group(1).replace("&quot;", '"')
    )
    assert [s["key"] for s in config["series"]] == ["equity", "buy_and_hold", "rule"]
    assert 'id="backtest-figures"' in html
    assert 'id="backtest-trades"' in html
    assert html.count("<tr><td>") >= min(op.result_summary["trades_total"], 50)
    # The range starts inside the model's training data: flagged on the page.
    assert 'id="backtest-warning-1"' in html
    assert "in-sample:" in html
    assert "rule baseline: long/short the zigzag leg confirmed so far" in html


def test_the_backtests_page_starts_one_from_its_form_and_lists_it(logged_in, model):
    page = logged_in.get("/backtests/")
    assert page.status_code == 200
    assert f'<option value="{model.pk}"' in page.content.decode()
    answer = logged_in.post(
        "/backtests/start/",
        {
            "model_id": model.pk,
            "start": "2017-08-01",
            "end": "2017-09-01",
            "cost_bps": "0.5",
            "sizing": "volatility",
            "target_vol": "0.05",
        },
    )
    op = Operation.objects.get(operation_type="backtest")
    assert answer.status_code == 302
    assert answer.url == f"/operations/{op.operation_id}/"
    assert op.metadata["sizing"]["target_vol"] == 0.05
    assert local_runs.wait_idle(timeout=120)
    listed = logged_in.get("/backtests/").content.decode()
    assert op.operation_id in listed


def test_a_bad_form_comes_back_as_a_message_naming_the_field(logged_in, model):
    answer = logged_in.post(
        "/backtests/start/", {"model_id": model.pk, "cost_bps": "-1"}, follow=True
    )
    assert answer.status_code == 200
    assert "cost_bps: cost_bps must be at least 0" in answer.content.decode()
    assert not Operation.objects.filter(operation_type="backtest").exists()


def test_edit_and_run_opens_the_form_pre_filled(logged_in, model):
    op = services.backtest_start(
        body={
            "model_id": model.pk,
            "start": "2017-08-01",
            "end": "2017-09-01",
            "cost_pips": 0.7,
            "sizing": {"method": "volatility", "target_vol": 0.2},
        }
    )
    assert local_runs.wait_idle(timeout=120)
    html = logged_in.get(f"/operations/{op.operation_id}/").content.decode()
    url = re.search(r'href="(/backtests/\?[^"]+)"', html).group(1).replace("&amp;", "&")
    form = logged_in.get(url).content.decode()
    assert 'name="cost_pips" inputmode="decimal" value="0.7"' in form
    assert 'name="start" type="date" value="2017-08-01"' in form
    assert 'name="target_vol" inputmode="decimal" value="0.2"' in form
    assert "<option selected>volatility</option>" in form
