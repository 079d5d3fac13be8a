"""The operation page's log: the lines it has, then new ones appended by the live poll (the rows
already shown stay the same elements, never re-rendered)."""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from operations.bridge import ProgressBridge
from operations.execution import operation_launch
from operations.kinds import Launch
from operations.local import WorkContext, local_runs

pytestmark = pytest.mark.django_db(transaction=True)

log = logging.getLogger("tests.e2e.worker")


def test_the_log_shows_its_lines_and_appends_new_ones_live(logged_in_page, tmp_path):
    page = logged_in_page
    more = threading.Event()

    def work(ctx: WorkContext) -> dict[str, Any]:
        ctx.logger.info("loading 3 segments of EURUSD 1h")
        log.warning("segment 1 answered slowly (4.2 s)")
        ctx.bridge.update(percentage=30.0, message="waiting")
        while not more.wait(0.01):
            ctx.token.raise_if_cancelled("waiting")
        ctx.logger.info("segment 2 and 3 fetched: 1,440 bars")
        return {"bars": 1440}

    op = operation_launch(
        operation_type="test", launch=Launch(work=work, bridge=ProgressBridge(), metadata={})
    )
    page.goto(f"/operations/{op.operation_id}/")
    rows = page.locator("#log-lines tr")
    expect(page.locator("#log-lines")).to_contain_text("segment 1 answered slowly", timeout=15_000)
    # Mark the rows the page has: an append keeps them, a re-render would drop the mark.
    page.evaluate("document.querySelectorAll('#log-lines tr').forEach(r => r.dataset.seen = '1')")
    shown = rows.count()
    assert shown >= 3

    more.set()
    expect(page.locator("#operation-live .badge")).to_have_text("completed", timeout=20_000)
    expect(page.locator("#log-lines")).to_contain_text("segment 2 and 3 fetched")
    expect(page.locator("#log-lines")).to_contain_text(re.compile(r"completed: in \d"))
    assert page.locator("#log-lines tr[data-seen='1']").count() == shown
    assert rows.count() > shown
    expect(page.locator("#log-lines tr.log-warning")).to_contain_text("answered slowly")
    out = Path(os.environ.get("KTRDR_SCREENSHOT_DIR") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    page.locator("#log-panel").scroll_into_view_if_needed()
    page.screenshot(path=str(out / "operation-logs.png"), full_page=True)
    assert local_runs.wait_idle(10)
