"""Reach: every page fits a 360 px screen, follows a dark colour scheme, and shows times in the
viewer's zone (UTC on hover)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from playwright.sync_api import expect

from operations.countdown import countdown_start
from operations.local import local_runs

pytestmark = pytest.mark.django_db(transaction=True)

PAGES = [
    "/operations/",
    "/data/",
    "/training/",
    "/training/strategies/rsi_macd_zigzag/",
    "/training/models/",
    "/backtests/",
    "/evaluations/",
    "/agents/",
]


@pytest.fixture
def viewer(browser, live_server, django_user_model):
    """A logged-in browser context made to order (size, colour scheme, time zone)."""
    user = django_user_model.objects.create_user(username="reach", password="browser-pass-1")
    contexts = []

    def open_page(**options):
        context = browser.new_context(base_url=live_server.url, **options)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto("/login/")
        page.fill("#id_username", "reach")
        page.fill("#id_password", "browser-pass-1")
        page.click("button[type=submit]")
        page.wait_for_url("**/operations/")
        return page

    yield user, open_page
    for context in contexts:
        context.close()


def _ended_countdown(user):
    op = countdown_start(steps=2, step_seconds=0.01, user=user)
    assert local_runs.wait_idle(10)
    return op


def _luminance(css_color: str) -> float:
    r, g, b = (int(v) / 255 for v in re.findall(r"\d+", css_color)[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_fits_360_px_in_both_colour_schemes(viewer, scheme):
    user, open_page = viewer
    op = _ended_countdown(user)
    page = open_page(viewport={"width": 360, "height": 740}, color_scheme=scheme)
    for path in [*PAGES, f"/operations/{op.operation_id}/"]:
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"{path} is {width} px wide at 360 px ({scheme})"
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        text = page.evaluate("getComputedStyle(document.body).color")
        if scheme == "dark":
            assert _luminance(background) < 0.2 < _luminance(text), (path, background, text)
        else:
            assert _luminance(background) > 0.8 > _luminance(text), (path, background, text)
    # The nav stays reachable: every link is in the page, the row scrolls instead of overflowing.
    expect(page.locator(".topbar nav a", has_text="Agents")).to_be_attached()


def test_times_are_shown_in_the_viewers_zone_with_utc_on_hover(viewer):
    user, open_page = viewer
    op = _ended_countdown(user)
    page = open_page(viewport={"width": 1280, "height": 900}, timezone_id="Asia/Tokyo")
    page.goto(f"/operations/{op.operation_id}/")
    shown = page.locator("dl.facts time[data-local]")
    utc = op.created_at.astimezone(dt.UTC)
    tokyo = utc + dt.timedelta(hours=9)
    expect(shown).to_have_attribute("title", utc.strftime("%Y-%m-%d %H:%M:%S UTC"))
    # Intl's medium style: "Dec 2, 2026, 3:13:03 PM" — Tokyo's hour, not UTC's.
    expect(shown).to_contain_text(f"{tokyo.hour % 12 or 12}:{tokyo:%M:%S}")
    expect(page.locator("dl.facts time[data-relative]")).to_contain_text(re.compile(r"now|ago"))


# WCAG 2.1 contrast of every visible text against the background it is drawn on, computed in the
# page (the relative-luminance formula of the standard): 4.5:1, or 3:1 for large text.
CONTRAST_CHECK = """() => {
  const parse = (c) => {
    const m = c && c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(",").map((s) => parseFloat(s));
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const lum = (c) => {
    const f = (v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const over = (top, under) => ({
    r: top.r * top.a + under.r * (1 - top.a), g: top.g * top.a + under.g * (1 - top.a),
    b: top.b * top.a + under.b * (1 - top.a), a: 1,
  });
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
    }
    let colour = parse(getComputedStyle(document.documentElement).backgroundColor);
    if (!colour || colour.a === 0) colour = { r: 255, g: 255, b: 255, a: 1 };
    for (const layer of layers.reverse()) colour = over(layer, colour);
    return colour;
  };
  const failures = [];
  const seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const el = walker.currentNode.parentElement;
    if (!walker.currentNode.textContent.trim() || !el || seen.has(el)) continue;
    seen.add(el);
    const style = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    if (!box.width || !box.height || style.visibility === "hidden") continue;
    if (el.closest("[hidden], [disabled], script, template, noscript")) continue;
    const bg = background(el);
    const fg = over(parse(style.color), bg);
    const ratio = (Math.max(lum(fg), lum(bg)) + 0.05) / (Math.min(lum(fg), lum(bg)) + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (parseInt(style.fontWeight, 10) >= 700 && size >= 18.66);
    if (ratio < (large ? 3 : 4.5)) {
      const text = el.textContent.trim().slice(0, 40);
      failures.push(`${el.tagName.toLowerCase()}.${el.className} "${text}" ${ratio.toFixed(2)}:1`);
    }
  }
  return failures;
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_contrast_is_aa_on_every_page_in_both_schemes(viewer, scheme):
    user, open_page = viewer
    op = _ended_countdown(user)
    running = countdown_start(steps=500, step_seconds=0.2, user=user)
    page = open_page(viewport={"width": 1280, "height": 900}, color_scheme=scheme)
    try:
        paths = [*PAGES, "/runs/", "/system/", f"/operations/{op.operation_id}/"]
        for path in [*paths, f"/operations/{running.operation_id}/"]:
            page.goto(path)
            page.wait_for_timeout(300)
            assert page.evaluate(CONTRAST_CHECK) == [], f"{path} ({scheme})"
    finally:
        local_runs.cancel(running.operation_id, "test finished")
        assert local_runs.wait_idle(10)
