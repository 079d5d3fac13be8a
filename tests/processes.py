"""Other processes of this project in tests: `manage.py` subprocesses on the test database.

They see the same database as the test (the file-backed SQLite test database, or PostgreSQL) and,
with `REDIS_URL`, the same shared cache — as a command run beside the web server would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def process_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"KTRDR_ROLE", "KTRDR_URLCONF", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "ktrdr_site.settings",
            "DATABASE_URL": database_url(),
            "KTRDR_CACHE_PREFIX": settings.CACHES["default"].get("KEY_PREFIX", "ktrdr"),
            "KTRDR_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    return env


def manage(*args: str, **extra_env: str) -> subprocess.Popen[str]:
    """Start `python manage.py ARGS…` with its output captured as text."""
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=process_env(**extra_env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
