"""What needs a browser: htmx polling updates rows live and stops when they end; cancel by click."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

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
    # The terminal fragment carries no hx-get: nothing polls any more.
    assert live.get_attribute("hx-get") is None
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
    live.locator("button.danger").click()
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
