"""The backtest panel in a browser: equity (three series) and drawdown drawn by uPlot with time
ticks and a percentage axis, the in-sample warning, the trades table."""

from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import expect

from backtest import services
from operations.local import local_runs
from operations.models import Operation
from tests.backtest.conftest import (  # noqa: F401
    data_dir,
    model,
    models_dir,
    stored_bars,
    trained_artifact,
)
from tests.training.conftest import eurusd  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_backtest_page_draws_equity_and_drawdown(logged_in_page, model):  # noqa: F811
    op = services.backtest_start(
        body={"model_id": model.pk, "start": "2017-06-15", "end": "2017-10-01", "cost_bps": 1}
    )
    assert local_runs.wait_idle(timeout=120)
    page = logged_in_page
    page.goto(f"/operations/{op.operation_id}/")
    equity = page.locator("#chart-equity")
    expect(equity.locator("canvas")).to_be_visible()
    expect(page.locator("#chart-drawdown canvas")).to_be_visible()
    # The x axis is time, from the first bar of the range to the last.
    curve = Operation.objects.get(pk=op.pk).result_summary["curve"]["time"]
    expect(equity).to_have_attribute("data-x-min", str(curve[0]))
    expect(equity).to_have_attribute("data-x-max", str(curve[-1]))
    expect(equity).to_have_attribute("data-y-ticks", re.compile(r".+\|.+\|.+"))
    assert "%" in page.locator("#chart-drawdown").get_attribute("data-y-ticks")
    box = equity.locator(".u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    legend = equity.locator(".u-legend")
    expect(legend).to_contain_text("buy & hold")
    expect(legend).to_contain_text("rule baseline")
    expect(page.locator("#backtest-warning-1")).to_contain_text("in-sample")
    expect(page.locator("#backtest-trades tbody tr").first).to_be_visible()
    shot = os.environ.get("KTRDR_SCREENSHOT")
    if shot:
        page.screenshot(path=shot, full_page=True)
