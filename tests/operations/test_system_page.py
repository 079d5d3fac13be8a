"""The System page: login required, linked from the nav, its figures from real events, polled as
one fragment with an ETag, and its last hour kept in a bounded ring of samples."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import pytest

from operations import selectors, system
from operations.system import SystemHistory, figures, quantile
from tests.fakes.workers import GatedWork, launch

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _fresh_history():
    system.history.clear()
    yield
    system.history.clear()


def _poll(client, url: str, etag: str | None = None):
    headers = {"HX-Request": "true", "HX-Target": "system-live"}
    if etag:
        headers["If-None-Match"] = etag
    return client.get(url, headers=headers)


def test_the_page_needs_a_login(client):
    resp = client.get("/system/")
    assert resp.status_code == 302
    assert resp["Location"].startswith("/login/")


def test_the_nav_links_the_page_and_it_shows_the_figures(logged_in, fast_ttl):
    work = GatedWork()
    op = launch(work)
    assert work.started.wait(10)
    selectors.operation_get(operation_id=op.operation_id, force_refresh=True)
    for _ in range(3):
        selectors.operation_get(operation_id=op.operation_id)
    page = logged_in.get("/operations/")
    assert b'href="/system/"' in page.content
    resp = logged_in.get("/system/")
    assert resp.status_code == 200
    html = resp.content.decode()
    assert 'id="system-live"' in html
    assert 'data-poll-url="/system/?since=' in html
    # The running countdown's worker and its local refresh are on the page.
    pool = re.search(r'id="tile-pool".*?class="figure">([^<]+)<', html, re.S)
    assert pool is not None
    busy, size = (int(x) for x in pool.group(1).split("/"))
    assert busy >= 1
    assert size >= 1
    assert 'id="latency-local"' in html
    assert 'id="chart-hit-rate"' in html
    assert 'id="chart-activity"' in html
    work.release.set()


def test_a_poll_is_one_fragment_with_an_etag_and_a_304_when_nothing_moved(logged_in):
    first = _poll(logged_in, "/system/")
    assert first.status_code == 200
    body = first.content.decode()
    assert body.lstrip().startswith('<section id="system-live"')
    assert "<html" not in body
    etag = first["ETag"]
    again = _poll(logged_in, "/system/", etag)
    assert again.status_code == 304
    assert again.content == b""


def test_since_must_be_a_sample_time(logged_in):
    for bad in ("abc", "nan", "-1", "1e30"):
        resp = logged_in.get(f"/system/?since={bad}")
        assert resp.status_code == 400, bad
        assert resp.content.startswith(b"since:")


def test_a_poll_appends_only_the_samples_after_since(logged_in, settings):
    settings.KTRDR = {**settings.KTRDR, "SYSTEM_SAMPLE_SECONDS": 1.0}
    clock = Clock()
    system.history.clock = clock
    try:
        logged_in.get("/system/")
        clock.now += 5
        logged_in.get("/system/")
        samples = system.history.samples()
        assert len(samples) == 2
        resp = _poll(logged_in, f"/system/?since={samples[0].point['t']}")
        appended = re.search(
            r"data-chart-append><script[^>]*>(.*?)</script>", resp.content.decode(), re.S
        )
        assert appended is not None
        points = json.loads(unescape(appended.group(1)))
        assert [p["t"] for p in points] == [samples[1].point["t"]]
        assert f"since={samples[1].point['t']}" in resp.content.decode()
    finally:
        system.history.clock = __import__("time").time


# --- the figures ----------------------------------------------------------------------------------
def key(name: str, **labels: str):
    return (name, tuple(sorted(labels.items())))


def values(hits: float, misses: float, refreshes: float, buckets: dict[str, float]) -> dict:
    out = {
        key("ktrdr_read_cache_lookups_total", result="hit"): hits,
        key("ktrdr_read_cache_lookups_total", result="miss"): misses,
        key("ktrdr_refreshes_total", place="local", outcome="ok"): refreshes,
        key("ktrdr_operations", kind="countdown", status="running"): 2.0,
    }
    for le, n in buckets.items():
        out[key("ktrdr_refresh_duration_seconds_bucket", place="local", le=le)] = n
    return out


def test_rates_compare_now_with_the_sample_about_a_minute_ago(settings):
    settings.KTRDR = {**settings.KTRDR, "OPERATIONS_CACHE_TTL": 1.0}
    clock = Clock()
    keep = SystemHistory(clock=clock)
    figures(values(0, 0, 0, {"0.01": 0, "0.1": 0, "+Inf": 0}), keep=keep)
    clock.now += 60
    # 90 hits, 10 misses, 60 refreshes in 60 s; 2 active operations.
    shown = figures(values(90, 10, 60, {"0.01": 50, "0.1": 60, "+Inf": 60}), keep=keep)
    assert shown.window_seconds == 60
    assert shown.hit_rate == pytest.approx(0.9)
    assert shown.refresh_rate == pytest.approx(1.0)
    # 1 refresh/s × 1 s TTL / 2 operations: half a refresh per operation per TTL window.
    assert shown.refreshes_per_op_per_ttl == pytest.approx(0.5)
    local = next(x for x in shown.latency if x["place"] == "local")
    assert local["count"] == 60
    assert local["p50_ms"] == pytest.approx(6.0)  # rank 30 of the 50 under 10 ms
    assert local["p95_ms"] == pytest.approx(10 + 90 * (57 - 50) / 10)
    assert shown.points[-1]["hit_rate"] is None  # 60 s after the first: more than 3 intervals


def test_the_ring_keeps_one_sample_per_interval_and_at_most_an_hour(settings):
    settings.KTRDR = {**settings.KTRDR, "SYSTEM_SAMPLE_SECONDS": 10.0}
    clock = Clock()
    keep = SystemHistory(clock=clock)
    for _ in range(5):
        keep.observe(values(0, 0, 0, {}))
        clock.now += 1
    assert len(keep.samples()) == 1  # one per 10 s however often someone looks
    for _ in range(1000):
        clock.now += 10
        keep.observe(values(0, 0, 0, {}))
    kept = keep.samples()
    assert len(kept) <= 361
    assert kept[-1].at - kept[0].at <= 3600


def test_chart_points_are_rates_between_neighbouring_samples(settings):
    settings.KTRDR = {**settings.KTRDR, "SYSTEM_SAMPLE_SECONDS": 10.0}
    clock = Clock()
    keep = SystemHistory(clock=clock)
    keep.observe(values(10, 10, 0, {"0.01": 0, "+Inf": 0}))
    clock.now += 10
    keep.observe(values(40, 20, 20, {"0.01": 20, "+Inf": 20}))
    point = keep.samples()[-1].point
    assert point["hit_rate"] == pytest.approx(0.75)
    assert point["refresh_rate"] == pytest.approx(2.0)
    assert point["p95_ms"] == pytest.approx(9.5)


def test_quantile_interpolates_inside_a_bucket_like_prometheus():
    assert quantile(0.5, {"0.1": 0, "+Inf": 0}) is None
    assert quantile(0.5, {"1": 10, "2": 20, "+Inf": 20}) == pytest.approx(1.0)
    assert quantile(0.75, {"1": 10, "2": 20, "+Inf": 20}) == pytest.approx(1.5)
    # Past the last finite bound all that is known is that bound.
    assert quantile(0.99, {"1": 10, "+Inf": 20}) == pytest.approx(1.0)


def test_no_bridge_or_batch_path_records_a_metric():
    """The hot paths stay memory-only: no prometheus_client and no metrics module there."""
    for path in ("operations/bridge.py", "training/bridge.py", "marketdata/progress.py"):
        text = (ROOT / path).read_text()
        assert "prometheus_client" not in text, path
        assert "metrics import" not in text, path
        assert "import metrics" not in text, path
