"""Two real backend processes (daphne) on one home: one scrape sums what both recorded, and a
process that starts after another exited prunes the dead one's files (prometheus_client's
multiprocess mode, docs/monitoring.md)."""

from __future__ import annotations

import pytest
import requests
from django.conf import settings
from rest_framework.authtoken.models import Token

from operations import services
from operations.models import Executor
from tests.processes import backend_process, process_env
from tests.scrape import parse, value

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SCRAPE_TOKEN = "two-process-scrape-token-0123456789"


def _scrape(url: str) -> dict:
    resp = requests.get(
        f"{url}/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"}, timeout=30
    )
    assert resp.status_code == 200, resp.text[:300]
    return parse(resp.text)


def _read(url: str, token: str, operation_id: str, times: int) -> None:
    with requests.Session() as session:
        session.headers["Authorization"] = f"Token {token}"
        for _ in range(times):
            resp = session.get(f"{url}/api/v1/operations/{operation_id}/", timeout=30)
            assert resp.status_code == 200, resp.text[:300]


def test_one_scrape_sums_the_counters_of_two_backend_processes(tmp_path, user):
    token = Token.objects.create(user=user).key
    op = services.operation_create(operation_type="countdown", executor=Executor.LOCAL)
    services.operation_fail(operation_id=op.operation_id, error_message="ended for the test")
    # One home, so one metrics folder; a fresh one, so the counts are exactly this test's.
    env = process_env(KTRDR_HOME=str(tmp_path / "home"), KTRDR_METRICS_TOKEN=SCRAPE_TOKEN)
    with backend_process(env) as first:
        with backend_process(env) as second:
            _read(first, token, op.operation_id, 3)
            _read(second, token, op.operation_id, 5)
            from_first, from_second = _scrape(first), _scrape(second)
            # Local memory is each process's own cache: one miss each, then hits. Redis is
            # one cache for both: the first read misses, every other one hits.
            misses = 1 if "redis" in settings.CACHES["default"]["BACKEND"].lower() else 2
            for samples in (from_first, from_second):
                assert value(samples, "ktrdr_read_cache_lookups_total") == 8
                assert value(samples, "ktrdr_read_cache_lookups_total", result="miss") == misses
                assert value(samples, "ktrdr_read_cache_lookups_total", result="hit") == 8 - misses
                # From the database at scrape time, the same in both.
                assert value(samples, "ktrdr_operations", kind="countdown", status="failed") == 1
        # The second process has exited; one that starts now removes its files.
        with backend_process(env) as third:
            samples = _scrape(third)
            assert value(samples, "ktrdr_read_cache_lookups_total") == 3
        # The first one's counts were never touched by the others' start or exit.
        assert value(_scrape(first), "ktrdr_read_cache_lookups_total") == 3
