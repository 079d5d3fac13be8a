"""Charts in a browser: ticks and axis labels, the live legend, drag-to-zoom with a double-click
reset, the best epoch marked and named, a log scale for the loss, candles once the price chart
is zoomed in; the series page polling while a load of it runs and stopping after."""

from __future__ import annotations

import itertools
import re

import pandas as pd
import pytest
from playwright.sync_api import expect

from marketdata import store
from marketdata.synthetic import generate_bars
from marketdata.timeframes import TIMEFRAMES
from operations.bridge import ProgressBridge
from operations.execution import operation_launch
from operations.kinds import Launch
from operations.local import local_runs
from operations.models import Operation, OperationStatus

pytestmark = pytest.mark.django_db(transaction=True)


class Epochs:
    """Epoch records whose validation loss is lowest at epoch 4 and accuracy best at epoch 6."""

    def __init__(self, epochs: int, pause: float = 0.0) -> None:
        self.epochs = epochs
        self.pause = pause  # between epochs: a run still going while the page is looked at

    def __call__(self, ctx):
        for epoch in range(1, self.epochs + 1):
            ctx.token.wait(self.pause)
            ctx.token.raise_if_cancelled("epoch")
            ctx.bridge.append_metric(
                "epoch",
                {
                    "epoch": epoch,
                    "train_loss": 2.0 / epoch,
                    "val_loss": 0.5 + (epoch - 4) ** 2 / 10,
                    "train_accuracy": 0.4 + epoch / 50,
                    "val_accuracy": 0.6 - abs(epoch - 6) / 50,
                    "learning_rate": 0.001,
                    "duration_seconds": 0.1,
                },
            )
        return {}


def _drag(page, selector: str, start: float, end: float) -> None:
    box = page.locator(f"{selector} .u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * start, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * end, y, steps=8)
    page.mouse.up()


def test_training_charts_have_ticks_zoom_a_best_epoch_and_a_log_scale(logged_in_page, user):
    page = logged_in_page
    op = operation_launch(
        operation_type="training",
        launch=Launch(work=Epochs(10), bridge=ProgressBridge(), metadata={}),
        user=user,
    )
    assert local_runs.wait_idle(timeout=20)
    page.goto(f"/operations/{op.operation_id}/")
    loss = page.locator("#chart-loss")
    expect(loss.locator("canvas")).to_be_visible()
    # Real ticks on both axes: whole epochs along x, loss values up y.
    x_ticks = loss.get_attribute("data-x-ticks").split("|")
    assert len(x_ticks) >= 3
    assert all(re.fullmatch(r"\d+", t) for t in x_ticks), x_ticks
    y_ticks = [t for t in loss.get_attribute("data-y-ticks").split("|") if t]
    assert len(y_ticks) >= 3
    assert all(float(t) == float(t) for t in y_ticks)
    acc_ticks = page.locator("#chart-accuracy").get_attribute("data-y-ticks")
    assert "100.0 %" in acc_ticks

    # The best epoch is marked and named: lowest validation loss, best validation accuracy.
    assert loss.get_attribute("data-best-x") == "4"
    expect(loss.locator(".chart-best")).to_contain_text("best epoch 4: lowest validation loss 0.5")
    expect(page.locator("#chart-accuracy .chart-best")).to_contain_text("best epoch 6")
    expect(page.locator(".chart-hint").first).to_contain_text("double-click")

    # The live legend shows every series' value at the pointer.
    box = loss.locator(".u-over").bounding_box()
    page.mouse.move(box["x"] + 2, box["y"] + box["height"] / 2)
    legend = loss.locator(".u-legend")
    expect(legend).to_contain_text("train loss")
    expect(legend.locator(".u-value").nth(0)).to_have_text("1")
    expect(legend.locator(".u-value").nth(1)).to_have_text("2.000")
    expect(legend.locator(".u-value").nth(2)).to_have_text("1.400")

    # Drag-to-zoom narrows the x range; a double-click shows it all again.
    assert (loss.get_attribute("data-x-min"), loss.get_attribute("data-x-max")) == ("1", "10")
    _drag(page, "#chart-loss", 0.3, 0.7)
    expect(loss).not_to_have_attribute("data-x-min", "1")
    zoomed = float(loss.get_attribute("data-x-max")) - float(loss.get_attribute("data-x-min"))
    assert 0 < zoomed < 9
    loss.locator(".u-over").dblclick()
    expect(loss).to_have_attribute("data-x-min", "1")
    expect(loss).to_have_attribute("data-x-max", "10")

    # The loss has a log-scale toggle: its ticks are spaced evenly on a log axis.
    linear = loss.get_attribute("data-y-ticks")
    toggle = loss.get_by_role("button", name="log scale")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    expect(loss).to_have_attribute("data-log", "1")
    log_ticks = [float(t) for t in loss.get_attribute("data-y-ticks").split("|") if t]
    assert loss.get_attribute("data-y-ticks") != linear
    ratios = [b / a for a, b in itertools.pairwise(log_ticks)]
    assert max(ratios) / min(ratios) == pytest.approx(1.0, rel=0.05)
    assert loss.get_attribute("data-best-x") == "4"
    toggle.click()
    expect(loss).to_have_attribute("data-log", "")
    assert page.csp_violations == []


@pytest.fixture
def bars(settings, tmp_path):
    settings.KTRDR = {**settings.KTRDR, "DATA_DIR": tmp_path / "data", "OPERATIONS_CACHE_TTL": 0.0}
    settings.DATA_ROOT = tmp_path
    frame = generate_bars(
        "EURUSD",
        TIMEFRAMES["1h"],
        pd.Timestamp("2024-01-01", tz="UTC"),
        pd.Timestamp("2024-07-01", tz="UTC"),
    )
    store.write_bars("EURUSD", "1h", frame, source="synthetic")
    return frame


def test_the_price_chart_draws_candles_once_zoomed_in(logged_in_page, bars):
    page = logged_in_page
    page.goto("/data/EURUSD/1h/?start=2024-03-01&end=2024-05-01")
    chart = page.locator("#chart-price")
    expect(chart.locator("canvas")).to_be_visible()
    # Two months of hourly bars: the close with its high-low band, time ticks, price ticks.
    expect(chart).to_have_attribute("data-mode", "line")
    assert len([t for t in chart.get_attribute("data-y-ticks").split("|") if t]) >= 3
    first = pd.Timestamp(float(chart.get_attribute("data-x-min")), unit="s", tz="UTC")
    last = pd.Timestamp(float(chart.get_attribute("data-x-max")), unit="s", tz="UTC")
    assert (
        pd.Timestamp("2024-03-01", tz="UTC") <= first < last < pd.Timestamp("2024-05-01", tz="UTC")
    )
    # Zoomed in on a few days: OHLC candles; double-click: all of the range again.
    _drag(page, "#chart-price", 0.5, 0.55)
    expect(chart).to_have_attribute("data-mode", "candles")
    box = chart.locator(".u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 20)
    legend = chart.locator(".u-legend")
    for name in ("open", "high", "low", "close"):
        expect(legend).to_contain_text(name)
    expect(legend.locator(".u-value").nth(4)).to_have_text(re.compile(r"^\d\.\d+$"))
    chart.locator(".u-over").dblclick()
    expect(chart).to_have_attribute("data-mode", "line")


def test_the_series_page_polls_while_a_load_runs_and_stops_after(logged_in_page, bars):
    page = logged_in_page
    op = Operation.objects.create(
        operation_id="op_data_load_e2e_eurusd",
        operation_type="data_load",
        status=OperationStatus.RUNNING,
        metadata={"symbol": "EURUSD", "timeframe": "1h"},
    )
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "/data/EURUSD/1h/" in r.url else None)
    page.goto("/data/EURUSD/1h/")
    live = page.locator("#series-live")
    expect(live).to_have_attribute("data-poll-url", "/data/EURUSD/1h/")
    expect(page.locator(f"#series-load-{op.operation_id}")).to_be_visible()
    before = page.locator("#series-bars").inner_text()
    # The load writes bars: the count and coverage grow on the page, without a reload.
    more = generate_bars(
        "EURUSD",
        TIMEFRAMES["1h"],
        pd.Timestamp("2024-07-01", tz="UTC"),
        pd.Timestamp("2024-07-08", tz="UTC"),
    )
    store.write_bars("EURUSD", "1h", more, source="synthetic")
    expect(page.locator("#series-bars")).not_to_have_text(before, timeout=20_000)
    expect(page.locator("#series-coverage")).to_contain_text("2024-07-0")
    assert len(polls) >= 2
    # The load ends: the fragment says so and carries no poll URL, and nothing polls any more.
    Operation.objects.filter(pk=op.pk).update(status=OperationStatus.COMPLETED)
    expect(page.locator("#series-load-ended")).to_be_visible(timeout=20_000)
    assert live.get_attribute("data-poll-url") is None
    polls.clear()
    page.wait_for_timeout(5000)
    assert polls == []


def test_a_zoomed_chart_stays_zoomed_while_epochs_arrive(logged_in_page, user):
    page = logged_in_page
    op = operation_launch(
        operation_type="training",
        launch=Launch(work=Epochs(40, pause=0.25), bridge=ProgressBridge(), metadata={}),
        user=user,
    )
    page.goto(f"/operations/{op.operation_id}/")
    rows = page.locator("#epoch-rows tr")
    expect(rows.nth(5)).to_be_attached(timeout=20_000)
    loss = page.locator("#chart-loss")
    _drag(page, "#chart-loss", 0.2, 0.8)
    expect(loss).not_to_have_attribute("data-x-min", "1")
    zoom = (loss.get_attribute("data-x-min"), loss.get_attribute("data-x-max"))
    shown = rows.count()
    # More epochs come by cursor: the table grows, the chart keeps the zoomed view.
    expect(rows.nth(shown + 3)).to_be_attached(timeout=20_000)
    assert (loss.get_attribute("data-x-min"), loss.get_attribute("data-x-max")) == zoom
    # A double-click shows all of them, the new ones included.
    loss.locator(".u-over").dblclick()
    expect(loss).to_have_attribute("data-x-min", "1")
    assert float(loss.get_attribute("data-x-max")) >= shown + 3
    local_runs.cancel(op.operation_id, "test finished")
    assert local_runs.wait_idle(10)
