"""The System page in Chromium: it lives (polls, its charts gain points), works under the CSP,
fits 360 px without a horizontal scrollbar, and reads in dark mode. Screenshots go to
$KTRDR_SCREENSHOTS when that is set (for people to look at)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hostagents import services as agent_services
from operations import system
from operations.countdown import countdown_start

pytestmark = pytest.mark.django_db(transaction=True)


def _shoot(page, name: str) -> None:
    folder = os.environ.get("KTRDR_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def _points(page, chart: str) -> int:
    # uPlot draws into a canvas; its legend's series and the figure's data say what it holds.
    return page.evaluate(
        """(id) => {
          const fig = document.getElementById(id);
          return fig && fig.dataset.ready ? fig.querySelectorAll('canvas').length : 0;
        }""",
        chart,
    )


@pytest.fixture
def busy_system(settings):
    settings.KTRDR = {
        **settings.KTRDR,
        "SYSTEM_SAMPLE_SECONDS": 1.0,
        "OPERATIONS_CACHE_TTL": 0.2,
        "LOCAL_WORKERS": 2,
    }
    system.history.clear()
    agent_services.agent_add(name="gpu1", base_url="http://127.0.0.1:9")
    for _ in range(3):
        countdown_start(steps=80, step_seconds=0.1)
    yield
    system.history.clear()


@pytest.mark.parametrize(
    ("width", "scheme"), [(1280, "light"), (1280, "dark"), (360, "light"), (360, "dark")]
)
def test_the_system_page_lives_and_fits(
    browser, live_server, django_user_model, busy_system, width, scheme
):
    django_user_model.objects.create_user(username="eve", password="browser-pass-1")
    context = browser.new_context(
        base_url=live_server.url,
        viewport={"width": width, "height": 900},
        color_scheme=scheme,
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    violations: list[str] = []
    page.on(
        "console",
        lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    page.goto("/login/")
    page.fill("#id_username", "eve")
    page.fill("#id_password", "browser-pass-1")
    page.click("button[type=submit]")
    page.wait_for_url("**/operations/")
    page.click("nav >> text=System")
    page.wait_for_url("**/system/")
    page.wait_for_selector("#chart-activity[data-ready] canvas")
    first_since = page.get_attribute("#system-live", "data-poll-url")
    # The poller swaps the fragment in with new samples: its `since` moves on.
    page.wait_for_function(
        "(url) => document.getElementById('system-live').dataset.pollUrl !== url",
        arg=first_since,
        timeout=20_000,
    )
    page.wait_for_timeout(2500)  # a few more samples, for the chart to show a line
    assert _points(page, "chart-activity") >= 1
    assert page.locator("#tile-pool .figure").inner_text().strip() != ""
    assert page.locator("#agent-gpu1").count() == 1
    # Nothing wider than the screen: no sideways scrolling of the page itself.
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{overflow}px wider than the {width}px viewport"
    background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    if scheme == "dark":
        assert background == "rgb(18, 21, 28)"
    else:
        assert background == "rgb(246, 247, 250)"
    _shoot(page, f"system-{width}-{scheme}")
    context.close()
    assert violations == [], violations
