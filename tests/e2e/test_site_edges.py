"""What needs a browser at the site's edges: no failed request (favicon included) on any page,
the cancel message shown with its fragment and not on the next page, our 404 and 500 pages."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from operations.countdown import countdown_start
from operations.local import local_runs

pytestmark = pytest.mark.django_db(transaction=True)


def _record_failures(page) -> list[str]:
    failures: list[str] = []
    page.on(
        "response", lambda r: failures.append(f"{r.status} {r.url}") if r.status >= 400 else None
    )
    page.on("requestfailed", lambda r: failures.append(f"failed {r.url}"))
    page.on(
        "console",
        lambda msg: failures.append(f"console {msg.text}") if msg.type == "error" else None,
    )
    return failures


def test_no_page_has_a_failed_request_and_the_favicon_loads(logged_in_page, django_user_model):
    page = logged_in_page
    failures = _record_failures(page)
    op = countdown_start(steps=2, step_seconds=0.01)
    assert local_runs.wait_idle(10)
    paths = ["/operations/", f"/operations/{op.operation_id}/", "/data/", "/training/", "/agents/"]
    paths += ["/api/v1/", "/api/docs/", "/api/v1/operations/"]
    for path in paths:
        page.goto(path)
        page.wait_for_load_state("networkidle")
        if not path.startswith("/api/"):
            href = page.locator("link[rel=icon]").get_attribute("href")
            assert href == "/static/ktrdr/favicon.svg"
            assert page.request.get(href).headers["content-type"] == "image/svg+xml"
    # A page that names no icon (the admin's login): the browser's /favicon.ico finds it too.
    page.context.clear_cookies()
    page.goto("/admin/login/")
    response = page.request.get("/favicon.ico")
    assert response.ok
    assert response.url.endswith("/static/ktrdr/favicon.svg")
    assert failures == []


def test_the_cancel_message_shows_with_its_fragment_and_not_later(logged_in_page):
    page = logged_in_page
    page.fill("input[name=steps]", "200")
    page.fill("input[name=step_seconds]", "0.2")
    page.click("text=Start countdown")
    page.wait_for_url(re.compile(r".*/operations/op_countdown_.*/"))
    live = page.locator("#operation-live")
    expect(live.locator(".badge")).to_have_text("running")
    live.locator("summary", has_text="Cancel…").click()
    live.get_by_role("button", name="Yes, cancel it").click()
    expect(page.locator("#messages .flash.success")).to_contain_text("Cancel requested for")
    expect(live.locator(".badge")).to_have_text("cancelled", timeout=15_000)
    assert local_runs.wait_idle(10)
    page.goto("/operations/")
    expect(page.locator("#operations-table")).to_be_visible()
    assert page.locator(".flash").count() == 0


@pytest.mark.urls("tests.operations.raising_urls")
def test_our_404_and_500_pages_with_debug_off(logged_in_page, settings):
    settings.DEBUG = False
    page = logged_in_page
    response = page.goto("/no/such/page/")
    assert response.status == 404
    expect(page.locator("h1")).to_have_text("Page not found")
    expect(page.locator("main")).to_contain_text("/no/such/page/")
    expect(page.locator("nav")).to_contain_text("Operations")
    response = page.goto("/broken/")
    assert response.status == 500
    expect(page.locator("h1")).to_have_text("Server error")
    # The standalone page is styled like the rest (the stylesheet loaded).
    color = page.locator(".topbar").evaluate("e => getComputedStyle(e).backgroundColor")
    assert color == "rgb(29, 35, 48)"
