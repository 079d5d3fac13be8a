"""What needs a browser: live polling updates pages and stops when work ends; one poll per viewer
whatever the page shows, none while the tab is hidden; charts that grow; cancel, confirmed."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from operations.bridge import ProgressBridge
from operations.countdown import countdown_start
from operations.execution import operation_launch
from operations.kinds import Launch
from operations.local import local_runs

pytestmark = pytest.mark.django_db(transaction=True)


def test_countdown_progress_updates_live_and_polling_stops_at_the_end(logged_in_page):
    page = logged_in_page
    page.fill("input[name=steps]", "6")
    page.fill("input[name=step_seconds]", "0.4")
    page.click("text=Start countdown")
    page.wait_for_url(re.compile(r".*/operations/op_countdown_.*/"))
    live = page.locator("#operation-live")
    expect(live.locator(".badge")).to_have_text("running")
    # The fragment is re-fetched every second: the step counter moves without a reload.
    expect(live).to_contain_text(re.compile(r"step [1-5]/6"))
    expect(live.locator(".badge")).to_have_text("completed", timeout=20_000)
    expect(live).to_contain_text("100.0%")
    # The terminal fragment carries no poll URL: nothing polls any more.
    assert live.get_attribute("data-poll-url") is None
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.wait_for_timeout(2500)
    assert not [u for u in requests if "/operations/" in u]


def test_cancel_button_cancels_a_running_countdown(logged_in_page):
    page = logged_in_page
    page.fill("input[name=steps]", "200")
    page.fill("input[name=step_seconds]", "0.2")
    page.click("text=Start countdown")
    page.wait_for_url(re.compile(r".*/operations/op_countdown_.*/"))
    live = page.locator("#operation-live")
    expect(live.locator(".badge")).to_have_text("running")
    live.locator("summary", has_text="Cancel…").click()
    confirm = live.get_by_role("button", name="Yes, cancel it")
    expect(confirm).to_be_visible()
    # Polls swap the live section every second: the open confirmation survives them.
    page.wait_for_timeout(2500)
    expect(live).to_contain_text(re.compile(r"step \d+/200"))
    assert live.locator(".badge").inner_text() == "running"
    confirm.click()
    expect(live.locator(".badge")).to_have_text("cancelled", timeout=15_000)
    expect(live).to_contain_text("Cancel requested")
    assert local_runs.wait_idle(10)


def test_list_rows_update_live(logged_in_page):
    page = logged_in_page
    page.fill("input[name=steps]", "5")
    page.fill("input[name=step_seconds]", "0.3")
    page.click("text=Start countdown")
    page.wait_for_url(re.compile(r".*/operations/op_countdown_.*/"))
    page.goto("/operations/")
    row = page.locator("table.ops tbody tr").first
    expect(row.locator(".badge")).to_have_text("completed", timeout=20_000)
    expect(row).to_contain_text("100.0%")


def test_a_filter_wins_over_a_poll_that_was_in_flight(logged_in_page, user):
    """A poll answered after the user changed the filter answers for the old page: dropped."""
    page = logged_in_page
    running = countdown_start(steps=400, step_seconds=0.1, user=user)
    finished = countdown_start(steps=1, step_seconds=0.0, user=user)
    page.goto("/operations/")
    table = page.locator("#operations-table")
    expect(table).to_contain_text(running.operation_id)
    # Hold the list's next poll (the page's own URL, no query) until the filter has been swapped.
    held = []
    unfiltered = re.compile(r".*/operations/$")

    def hold(route) -> None:  # Playwright wants a function of its own, not a bound builtin
        held.append(route)

    page.route(unfiltered, hold)
    for _ in range(200):
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "no poll was sent"
    page.select_option("select[name=status]", "completed")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table).to_contain_text(finished.operation_id)
    held.pop().continue_()  # the stale poll answers now, with the unfiltered list
    page.wait_for_timeout(1500)
    expect(table).not_to_contain_text(running.operation_id)
    expect(table.locator("tbody tr")).to_have_count(1)
    page.unroute(unfiltered)
    local_runs.cancel(running.operation_id, "test finished")
    assert local_runs.wait_idle(10)


def _hide(page, hidden: bool) -> None:
    page.evaluate(
        "h => { Object.defineProperty(document, 'hidden', {value: h, configurable: true});"
        " document.dispatchEvent(new Event('visibilitychange')); }",
        hidden,
    )


def test_the_list_costs_one_poll_per_interval_and_nothing_while_hidden(logged_in_page, user):
    page = logged_in_page
    ops = [countdown_start(steps=400, step_seconds=0.1, user=user) for _ in range(4)]
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "/operations/" in r.url else None)
    page.goto("/operations/")
    expect(page.locator("table.ops tbody tr")).to_have_count(4)
    polls.clear()
    page.wait_for_timeout(3000)
    # Four running rows, one request a second for all of them (at most one more for timing).
    assert 2 <= len(polls) <= 4, polls
    assert not [u for u in polls if "/row/" in u]
    _hide(page, True)
    page.wait_for_timeout(300)
    polls.clear()
    page.wait_for_timeout(2500)
    assert polls == []
    _hide(page, False)
    # Shown again: it polls at once.
    page.wait_for_timeout(500)
    assert len(polls) >= 1
    for op in ops:
        local_runs.cancel(op.operation_id, "test finished")


class EpochWork:
    """Reports an epoch record every 0.2 s, like a training run."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def __call__(self, ctx):
        import time

        for epoch in range(1, self.epochs + 1):
            time.sleep(0.2)
            ctx.token.raise_if_cancelled("epoch")
            ctx.bridge.append_metric(
                "epoch",
                {
                    "epoch": epoch,
                    "train_loss": 1.0 / epoch,
                    "val_loss": 1.2 / epoch,
                    "train_accuracy": 0.5 + epoch / 100,
                    "val_accuracy": 0.5,
                    "learning_rate": 0.001,
                    "duration_seconds": 0.2,
                },
            )
            ctx.bridge.update(percentage=100.0 * epoch / self.epochs, message=f"epoch {epoch}")
        return {}


def test_the_training_panel_appends_epochs_to_its_table_and_charts(logged_in_page, user):
    page = logged_in_page
    op = operation_launch(
        operation_type="training",
        launch=Launch(work=EpochWork(12), bridge=ProgressBridge(), metadata={}),
        user=user,
    )
    page.goto(f"/operations/{op.operation_id}/")
    live = page.locator("#operation-live")
    expect(live.locator(".badge")).to_have_text("completed", timeout=20_000)
    # Every epoch arrived once, by cursor, in order: none lost, none twice.
    rows = page.locator("#epoch-rows tr")
    expect(rows).to_have_count(12)
    assert rows.nth(0).locator("td").first.inner_text() == "1"
    assert rows.nth(11).locator("td").first.inner_text() == "12"
    # The charts drew (uPlot canvases) and their legends show the series.
    for chart in ("#chart-loss", "#chart-accuracy"):
        expect(page.locator(f"{chart} canvas")).to_be_visible()
    expect(page.locator("#chart-loss")).to_contain_text("validation loss")
    # A reload draws the same 12 from the history, and nothing polls.
    page.reload()
    expect(page.locator("#epoch-rows tr")).to_have_count(12)
    assert page.locator("#operation-live").get_attribute("data-poll-url") is None


def test_the_api_docs_admin_and_browsable_api_work_under_the_content_security_policy(
    logged_in_page, django_user_model
):
    page = logged_in_page
    page.goto("/api/docs/")
    expect(page.locator(".swagger-ui .info")).to_be_visible(timeout=20_000)
    page.goto("/api/v1/operations/")
    expect(page.locator("body")).to_contain_text("operations")
    django_user_model.objects.create_superuser("root", "", "browser-root-1")
    page.context.clear_cookies()
    page.goto("/admin/login/")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", "browser-root-1")
    page.click("input[type=submit]")
    page.goto("/admin/operations/operation/")
    expect(page.locator("#changelist")).to_be_visible()
    assert page.csp_violations == []
