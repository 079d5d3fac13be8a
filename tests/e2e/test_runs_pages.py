"""The runs table, the comparison page and "Run again" in a browser (htmx swaps, uPlot charts
under the CSP). Set KTRDR_SCREENSHOTS=DIR to keep screenshots at 1280 and 360 px, light and dark.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import expect

from operations.local import local_runs
from operations.models import Operation
from tests.training.conftest import (  # noqa: F401 (fixtures)
    SMALL_STRATEGY,
    csv_loader,
    eurusd,
    models_dir,
    store_bars,
    strategies_dir,
)
from training.services import training_start

pytestmark = pytest.mark.django_db(transaction=True)

SHOTS = os.environ.get("KTRDR_SCREENSHOTS")


def _fits_360(page) -> None:
    """Loaded at 360 px, nothing makes the page scroll sideways (wide tables scroll in their
    box)."""
    page.set_viewport_size({"width": 360, "height": 740})
    page.reload()
    page.wait_for_load_state("load")
    if page.locator("figure.chart").count():
        page.wait_for_selector("figure.chart canvas")
    width = page.evaluate("document.documentElement.scrollWidth")
    page.set_viewport_size({"width": 1280, "height": 900})
    assert width <= 360, f"{page.url} is {width} px wide at 360 px"


def _shoot(page, name: str) -> None:
    if not SHOTS:
        return
    Path(SHOTS).mkdir(parents=True, exist_ok=True)
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for width in (1280, 360):
            page.set_viewport_size({"width": width, "height": 900})
            page.wait_for_timeout(150)
            page.screenshot(path=f"{SHOTS}/{name}-{width}-{scheme}.png", full_page=True)
    page.emulate_media(color_scheme="light")
    page.set_viewport_size({"width": 1280, "height": 900})


@pytest.fixture
def runs(strategies_dir, models_dir, store_bars):  # noqa: F811
    other = copy.deepcopy(SMALL_STRATEGY)
    other["name"] = "test_other"
    other["model"]["hidden_layers"] = [8]
    other["model"]["training"]["epochs"] = 4
    (strategies_dir / "test_other.yaml").write_text(yaml.safe_dump(other, sort_keys=False))
    ops = [
        training_start(strategy="test_small", end="2017-04-01", seed=1),
        training_start(strategy="test_small", end="2017-04-01", seed=2),
        training_start(strategy="test_other", end="2017-04-01"),
    ]
    assert local_runs.wait_idle(timeout=120)
    return [Operation.objects.get(pk=op.pk) for op in ops]


def test_runs_table_filters_in_place_and_compares_the_ticked_runs(logged_in_page, runs):
    page = logged_in_page
    page.click("nav >> text=Runs")
    page.wait_for_url("**/runs/")
    assert page.locator("#runs-table tbody tr").count() == 3
    _fits_360(page)
    _shoot(page, "runs")
    # A filter swaps the table (htmx) and the URL remembers it.
    page.fill("input[name=search]", "test_other")
    page.press("input[name=search]", "Enter")
    expect(page.locator("#runs-table tbody tr")).to_have_count(1)
    # htmx pushes the URL once the swap has settled: wait for it, don't race it.
    expect(page).to_have_url(re.compile(r"search=test_other"))
    page.fill("input[name=search]", "")
    page.press("input[name=search]", "Enter")
    expect(page.locator("#runs-table tbody tr")).to_have_count(3)
    page.click("th >> text=test accuracy")
    page.wait_for_url("**sort=test_accuracy**")
    # The sorted table is in (it brings the sort the filters form sends next).
    expect(page.locator("#runs-table p.muted").first).to_contain_text("sorted by test_accuracy")
    # A filter changed after sorting keeps the sort.
    page.fill("input[name=strategy]", "test_small")
    page.press("input[name=strategy]", "Enter")
    expect(page.locator("#runs-table tbody tr")).to_have_count(2)
    expect(page).to_have_url(
        re.compile(
            r"sort=test_accuracy.*strategy=test_small|strategy=test_small.*sort=test_accuracy"
        )
    )
    page.fill("input[name=strategy]", "")
    page.press("input[name=strategy]", "Enter")
    expect(page.locator("#runs-table tbody tr")).to_have_count(3)
    for op in runs:
        page.check(f"#pick-{op.operation_id}")
    page.click("text=Compare selected")
    page.wait_for_url("**/runs/compare/**")
    assert page.locator("tr.differs").count() >= 2
    # One uPlot chart per curve, drawn from the JSON in the page.
    page.wait_for_selector("#chart-compare-val_accuracy canvas")
    assert page.locator("figure.chart canvas").count() == 4
    # Narrowed in place (a phone turned), the charts follow.
    page.set_viewport_size({"width": 360, "height": 740})
    page.wait_for_timeout(500)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    _fits_360(page)
    _shoot(page, "compare")


def test_run_again_from_the_operation_page(logged_in_page, runs):
    page = logged_in_page
    old = runs[2]
    page.goto(f"/operations/{old.operation_id}/")
    _shoot(page, "rerun")
    page.click("text=Run again")
    page.wait_for_selector("text=Re-run of")
    assert old.operation_id in page.locator("dl.facts").first.inner_text()
    assert local_runs.wait_idle(timeout=60)
    new = Operation.objects.get(rerun_of=old)
    assert page.url.endswith(f"/operations/{new.operation_id}/")
    page.goto(f"/operations/{old.operation_id}/")
    page.click("text=Edit and run")
    page.wait_for_url("**/training/strategies/test_other/**")
    assert page.input_value("input[name=end]") == "2017-04-01"
