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
    assert html.count("<tr><td>") >= min(op.result_summary["trades_total"], 200)
    # The range starts inside the model's training data: flagged on the page.
    assert 'id="backtest-warning-1"' in html
    assert "in-sample:" in html
    assert "rule baseline: long/short the zigzag leg confirmed so far" in html
