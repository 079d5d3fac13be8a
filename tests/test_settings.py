"""Settings: environment knobs, and a clean `check --deploy` with DEBUG off and a real secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "KTRDR_"))}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_debug_off_and_a_real_secret():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="a-real-secret-" + "x7Q2" * 16,
        DJANGO_ALLOWED_HOSTS="ktrdr.example.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_debug_off_without_a_secret_refuses_to_start():
    result = _manage("check", DJANGO_DEBUG="0")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_a_malformed_knob_is_reported_by_name():
    result = _manage("check", KTRDR_OPERATIONS_CACHE_TTL="soon")
    assert result.returncode != 0
    assert "KTRDR_OPERATIONS_CACHE_TTL must be a number" in result.stderr


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the pool is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_a_pooled_connection_handed_back_carries_no_session_setting_to_the_next():
    assert "pool" in connection.settings_dict["OPTIONS"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        leaky = cursor.fetchone()[0]
        cursor.execute("SET default_transaction_read_only = on")
        cursor.execute("SET TIME ZONE 'Asia/Tokyo'")
    seen = []
    for _ in range(20):  # the pool hands its connections out in turn: until that one comes back
        connection.close()  # back to the pool, as at the end of a request
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_backend_pid(), current_setting('default_transaction_read_only'), "
                "current_setting('TimeZone')"
            )
            pid, read_only, zone = cursor.fetchone()
        seen.append(pid)
        if pid == leaky:
            assert (read_only, zone) == ("off", "UTC")
            return
    pytest.fail(f"connection {leaky} never came back from the pool: {seen}")
