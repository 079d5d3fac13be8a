"""`/metrics`: refused without credentials, and its engine counters move when their events happen
(real runs in the worker pool, real reads through the read path, real HTTP requests)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap

import pytest
from django.contrib.auth import get_user_model

from operations import metrics, selectors, services
from operations.execution import operation_cancel
from operations.local import local_runs
from operations.metrics import RefreshObserver, prune_dead_processes
from operations.models import Executor
from tests.fakes.workers import GatedWork, launch, wait_until
from tests.scrape import has, parse, value

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "scrape-token-for-tests-0123456789"


@pytest.fixture
def scrape_token(settings):
    settings.KTRDR = {**settings.KTRDR, "METRICS_TOKEN": TOKEN}
    return TOKEN


def scrape(client) -> dict:
    resp = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert resp.status_code == 200, resp.content[:300]
    assert resp["Content-Type"].startswith("text/plain; version=")
    return parse(resp.content)


# --- who may scrape ------------------------------------------------------------------------------
def test_anonymous_scrape_is_401_with_a_bearer_challenge(client, scrape_token):
    resp = client.get("/metrics")
    assert resp.status_code == 401
    assert resp["WWW-Authenticate"].startswith("Bearer")
    assert b"ktrdr_" not in resp.content


def test_a_wrong_token_is_401(client, scrape_token):
    for header in ("Bearer not-the-token-at-all-0000", "Token " + TOKEN, "Bearer"):
        resp = client.get("/metrics", HTTP_AUTHORIZATION=header)
        assert resp.status_code == 401, header
        assert b"ktrdr_" not in resp.content


def test_no_token_configured_means_no_token_is_accepted(client, settings):
    settings.KTRDR = {**settings.KTRDR, "METRICS_TOKEN": ""}
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer x").status_code == 401


def test_a_plain_user_gets_403_and_staff_get_the_metrics(client, user, scrape_token):
    client.force_login(user)
    resp = client.get("/metrics")
    assert resp.status_code == 403
    assert b"ktrdr_" not in resp.content
    staff = get_user_model().objects.create_user("sam", password="pw-staff-0", is_staff=True)
    client.force_login(staff)
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert has(parse(resp.content), "ktrdr_collector_up", collector="operations")


def test_the_scrape_token_gets_the_text_format(client, scrape_token):
    samples = scrape(client)
    assert value(samples, "ktrdr_collector_up", collector="operations") == 1
    assert value(samples, "ktrdr_collector_up", collector="agents") == 1


# --- counters move with their events ---------------------------------------------------------
def test_a_run_moves_starts_ends_pool_and_operation_gauges(client, scrape_token):
    before = scrape(client)
    work = GatedWork()
    op = launch(work)
    assert work.started.wait(10)
    during = scrape(client)
    assert value(during, "ktrdr_operation_starts_total", kind="test") == (
        value(before, "ktrdr_operation_starts_total", kind="test") + 1
    )
    assert value(during, "ktrdr_worker_pool_busy") >= value(before, "ktrdr_worker_pool_busy") + 1
    assert value(during, "ktrdr_worker_pool_size") >= 1
    # Read from the database at scrape time: the row as it is now.
    assert value(during, "ktrdr_operations", kind="test", status="running") == 1

    work.release.set()
    assert wait_until(lambda: local_runs.get(op.operation_id) is None)
    after = scrape(client)
    assert value(after, "ktrdr_operation_ends_total", kind="test", outcome="completed") == (
        value(before, "ktrdr_operation_ends_total", kind="test", outcome="completed") + 1
    )
    assert value(after, "ktrdr_worker_pool_busy") == value(before, "ktrdr_worker_pool_busy")
    assert value(after, "ktrdr_operations", kind="test", status="completed") == 1
    assert value(after, "ktrdr_operations", kind="test", status="running") == 0


def test_cancels_and_failures_are_counted(client, scrape_token):
    before = scrape(client)
    work = GatedWork()
    op = launch(work)
    assert work.started.wait(10)
    operation_cancel(operation_id=op.operation_id, reason="test")
    assert wait_until(lambda: local_runs.get(op.operation_id) is None)
    queued = services.operation_create(operation_type="test", executor=Executor.LOCAL)
    services.operation_fail(operation_id=queued.operation_id, error_message="boom")
    after = scrape(client)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("ktrdr_operation_cancel_requests_total", kind="test") == 1
    assert moved("ktrdr_operation_ends_total", kind="test", outcome="cancelled") == 1
    assert moved("ktrdr_operation_ends_total", kind="test", outcome="failed") == 1


def test_a_failed_transaction_counts_nothing(client, scrape_token):
    before = scrape(client)
    op = services.operation_create(operation_type="test", executor=Executor.LOCAL)
    services.operation_start(operation_id=op.operation_id)
    with pytest.raises(services.IllegalTransition):
        services.operation_start(operation_id=op.operation_id)  # running → running: refused
    after = scrape(client)
    assert value(after, "ktrdr_operation_starts_total", kind="test") == (
        value(before, "ktrdr_operation_starts_total", kind="test") + 1
    )


def test_reads_move_cache_hits_misses_and_local_refreshes(client, scrape_token, fast_ttl):
    work = GatedWork()
    op = launch(work)
    assert work.started.wait(10)
    before = scrape(client)
    # One pull, then reads inside the TTL window: the cache answers them.
    selectors.operation_get(operation_id=op.operation_id, force_refresh=True)
    for _ in range(5):
        selectors.operation_get(operation_id=op.operation_id)
    after = scrape(client)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("ktrdr_read_cache_lookups_total", result="hit") >= 4
    assert moved("ktrdr_read_cache_lookups_total", result="miss") >= 1
    assert moved("ktrdr_refreshes_total", place="local", outcome="ok") >= 1
    assert moved("ktrdr_refresh_duration_seconds_count", place="local") >= 1
    # Buckets are cumulative and bounded (no operation id anywhere in a label).
    assert has(after, "ktrdr_refresh_duration_seconds_bucket", place="local", le="+Inf")
    assert not any("op_" in v for (_n, ls) in after for _k, v in ls)
    work.release.set()


def test_an_api_read_over_http_is_counted(live_server, api, scrape_token, client):
    work = GatedWork()
    op = launch(work)
    assert work.started.wait(10)
    before = scrape(client)
    for _ in range(3):
        assert api.get(f"/api/v1/operations/{op.operation_id}/").status_code == 200
    after = scrape(client)
    moved = value(after, "ktrdr_read_cache_lookups_total") - value(
        before, "ktrdr_read_cache_lookups_total"
    )
    assert moved >= 3
    work.release.set()


# --- a refresh over its budget -----------------------------------------------------------------
class SteppingClock:
    """Each reading is `step` seconds after the previous one."""

    def __init__(self, step: float) -> None:
        self.now = 1000.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_a_refresh_slower_than_its_budget_logs_a_warning_with_the_figures(
    settings, monkeypatch, caplog, client, scrape_token
):
    settings.KTRDR = {**settings.KTRDR, "REFRESH_BUDGET_LOCAL": 0.05}
    work = GatedWork()
    op = launch(work)
    assert work.started.wait(10)
    before = scrape(client)
    monkeypatch.setattr(metrics, "refresh_observer", RefreshObserver(clock=SteppingClock(0.2)))
    with caplog.at_level(logging.WARNING, logger="operations.metrics"):
        selectors.operation_get(operation_id=op.operation_id, force_refresh=True)
    slow = [r for r in caplog.records if r.name == "operations.metrics"]
    assert len(slow) == 1
    message = slow[0].getMessage()
    assert slow[0].levelno == logging.WARNING
    assert op.operation_id in message
    assert "place local" in message
    assert "0.200 s" in message
    assert "budget of 0.050 s" in message
    after = scrape(client)
    assert value(after, "ktrdr_slow_refreshes_total", place="local") == (
        value(before, "ktrdr_slow_refreshes_total", place="local") + 1
    )
    work.release.set()


def test_a_refresh_within_its_budget_logs_nothing(settings, monkeypatch, caplog):
    settings.KTRDR = {**settings.KTRDR, "REFRESH_BUDGET_LOCAL": 0.05}
    work = GatedWork()
    op = launch(work)
    assert work.started.wait(10)
    monkeypatch.setattr(metrics, "refresh_observer", RefreshObserver(clock=SteppingClock(0.01)))
    with caplog.at_level(logging.WARNING, logger="operations.metrics"):
        selectors.operation_get(operation_id=op.operation_id, force_refresh=True)
    assert not [r for r in caplog.records if r.name == "operations.metrics"]
    work.release.set()


def test_the_budget_is_per_place(settings):
    settings.KTRDR = {
        **settings.KTRDR,
        "REFRESH_BUDGET_LOCAL": 0.01,
        "REFRESH_BUDGET_AGENT": 0.75,
    }
    assert metrics.refresh_budget("local") == 0.01
    assert metrics.refresh_budget("agent") == 0.75


# --- the multiprocess folder ----------------------------------------------------------------------
def test_files_of_dead_processes_are_pruned_and_live_ones_kept(tmp_path):
    # A real process records into its own folder and exits.
    script = textwrap.dedent(
        """
        from prometheus_client import Counter, Gauge
        Counter("demo", "d").inc()
        Gauge("demo_live", "d", multiprocess_mode="livesum").set(3)
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, check=True)
    assert done.returncode == 0
    dead = sorted(p.name for p in tmp_path.glob("*.db"))
    assert dead, "the child wrote no metrics file"
    mine = tmp_path / f"counter_{os.getpid()}.db"
    mine.write_bytes(b"")
    removed = prune_dead_processes(tmp_path)
    assert sorted(removed) == dead
    assert sorted(p.name for p in tmp_path.glob("*.db")) == [mine.name]


# --- the Grafana dashboard names real metrics ---------------------------------------------------
def _defined_names() -> set[str]:
    """Every sample name the project's metrics and collectors can produce."""
    from prometheus_client import Counter, Gauge, Histogram

    from hostagents import metrics as agent_metrics
    from marketdata import metrics as md_metrics
    from training import metrics as training_metrics

    names: set[str] = set()
    for module in (metrics, agent_metrics, md_metrics, training_metrics):
        for item in vars(module).values():
            if isinstance(item, Counter | Gauge | Histogram):
                for family in item.describe():
                    base = family.name
                    names |= {base, f"{base}_total", f"{base}_bucket", f"{base}_sum"}
                    names.add(f"{base}_count")
    collectors = [
        metrics.OperationsCollector(),
        agent_metrics.AgentsCollector(),
        md_metrics.IBPacingCollector(lambda: ("127.0.0.1:4002", 1, 60)),
        metrics._Guarded({}),
    ]
    for collector in collectors:
        names |= {family.name for family in collector.collect()}
    return names


def test_the_grafana_dashboard_is_json_naming_only_real_metrics():
    import json
    import re
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "ktrdr.json"
    dashboard = json.loads(path.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert exprs
    used = {name for e in exprs for name in re.findall(r"\bktrdr_[a-z_]+", e)}
    defined = _defined_names()
    assert used - defined == set()
    # The core figures are all on it.
    for name in (
        "ktrdr_operations",
        "ktrdr_read_cache_lookups_total",
        "ktrdr_refresh_duration_seconds_bucket",
        "ktrdr_agent_requests_total",
        "ktrdr_agent_up",
        "ktrdr_ib_pacing_violations_total",
        "ktrdr_worker_pool_busy",
        "ktrdr_training_samples_per_second",
        "ktrdr_artifact_bytes_total",
    ):
        assert name in used, name


def test_operation_counts_are_one_query_per_max_age(django_assert_num_queries):
    class Clock:
        now = 100.0

        def __call__(self) -> float:
            return self.now

    clock = Clock()
    collector = metrics.OperationsCollector(max_age=1.0, clock=clock)
    services.operation_create(operation_type="test", executor=Executor.LOCAL)
    with django_assert_num_queries(1):
        for _ in range(5):
            assert collector.counts() == [("test", "pending", 1)]
    services.operation_create(operation_type="test", executor=Executor.LOCAL)
    clock.now += 1.0
    with django_assert_num_queries(1):
        assert collector.counts() == [("test", "pending", 2)]


def test_a_short_metrics_token_or_a_bad_budget_is_refused_at_start(tmp_path):
    from tests.test_settings import _manage

    short = _manage("check", KTRDR_HOME=str(tmp_path), KTRDR_METRICS_TOKEN="short")
    assert short.returncode != 0
    assert "KTRDR_METRICS_TOKEN must be at least 16 characters" in short.stderr
    budget = _manage("check", KTRDR_HOME=str(tmp_path), KTRDR_REFRESH_BUDGET_AGENT="fast")
    assert budget.returncode != 0
    assert "KTRDR_REFRESH_BUDGET_AGENT must be a number" in budget.stderr
    # The metrics folder follows the home.
    ok = _manage("check", KTRDR_HOME=str(tmp_path))
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "metrics" / "backend").is_dir()
