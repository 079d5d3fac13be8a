"""The cache or the database down: reads fall back, errors are a 503 that says which, never a 500.

Real services on closed loopback ports: a Redis URL nobody listens on (in this process), and a
backend process started with a PostgreSQL URL nobody listens on.
"""

from __future__ import annotations

import pytest
import requests
from django.core.cache import caches

from operations.models import Operation
from tests.fakes.workers import GatedWork, launch, wait_until
from tests.processes import backend_process, free_port, process_env

pytestmark = pytest.mark.django_db(transaction=True)


closed_port = free_port  # released at once: nothing listens there


@pytest.fixture
def redis_down(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "ktrdr_site.redis_cache.PooledRedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    yield
    caches["default"].close()


def test_with_redis_down_reads_and_starts_work_from_the_database(
    redis_down, api, logged_in, fast_ttl
):
    work = GatedWork()
    op = launch(work)
    assert work.started.wait(10)

    # Pulled, uncached: within one TTL the answer shows what the worker reported.
    assert wait_until(
        lambda: (
            api.get(f"/api/v1/operations/{op.operation_id}/").json()["progress"]["percentage"]
            == 10.0
        )
    )
    detail = api.get(f"/api/v1/operations/{op.operation_id}/")
    started = api.post("/api/v1/operations/countdown/", {"steps": 2, "step_seconds": 0})
    page = logged_in.get(f"/operations/{op.operation_id}/")

    assert detail.status_code == 200
    assert detail.json()["status"] == "running"
    assert started.status_code == 202
    assert page.status_code == 200
    work.release.set()


def test_with_the_database_down_the_api_and_pages_answer_503_saying_which(tmp_path):
    env = process_env(
        DATABASE_URL=f"postgres://ktrdr@127.0.0.1:{closed_port()}/ktrdr",
        KTRDR_DB_CONNECT_TIMEOUT="2",
        DJANGO_DEBUG="1",  # even with the debug pages on, an outage is not a traceback
    )
    env.pop("REDIS_URL", None)
    with backend_process(env) as url:
        api = requests.get(
            f"{url}/api/v1/operations/", headers={"Authorization": "Token " + "0" * 40}, timeout=30
        )
        page = requests.get(f"{url}/operations/", cookies={"sessionid": "x" * 32}, timeout=30)
        health = requests.get(f"{url}/api/v1/health", timeout=30)

    assert api.status_code == 503
    body = api.json()["error"]
    assert body["code"] == "service_unavailable"
    assert body["message"].startswith("the database is unavailable")
    assert body["details"] == {"service": "database"}
    assert api.headers["Retry-After"]
    assert page.status_code == 503
    assert "Temporarily unavailable" in page.text
    assert "the database is unavailable" in page.text
    assert "Traceback" not in page.text
    assert health.status_code == 503
    assert health.json() == {"status": "degraded"}
    assert Operation.objects.count() == 0  # nothing of this test's database was touched


def test_health_says_the_cache_is_down_and_stays_up(redis_down, api, client):
    body = api.get("/api/v1/health").json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["cache"]["ok"] is False
    assert body["checks"]["cache"]["error"].startswith("the cache is unavailable")
    anonymous = client.get("/api/v1/health")
    assert anonymous.status_code == 200
    assert anonymous.json() == {"status": "degraded"}


def test_with_redis_down_the_agents_page_pulls_health_without_the_shared_lock(
    redis_down, logged_in
):
    from hostagents import services as agent_services

    agent_services.agent_add(name="a1", base_url=f"http://127.0.0.1:{closed_port()}")
    page = logged_in.get("/agents/")
    assert page.status_code == 200
    assert "a1" in page.content.decode()
