"""Other processes of this project in tests: `manage.py` subprocesses on the test database.

They see the same database as the test (the file-backed SQLite test database, or PostgreSQL) and,
with `REDIS_URL`, the same shared cache — as a command run beside the web server would.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import requests
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


def free_port() -> int:
    """A loopback port nothing listens on (released at once: a server may take it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def backend_process(env: dict[str, str], *, ready_within: float = 120.0) -> Iterator[str]:
    """A real daphne backend on a free loopback port, yielding its URL once it answers."""
    port = free_port()
    # Its output to a file: daphne logs a line per request, and a pipe nobody reads fills up and
    # blocks the server.
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
             "ktrdr_site.asgi:application"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + ready_within
            while True:
                try:
                    requests.get(f"{url}/login/", timeout=5)
                    break
                except requests.ConnectionError:
                    if server.poll() is not None:
                        log.seek(0)
                        raise RuntimeError(f"the backend exited: {log.read()[-2000:]}") from None
                    if time.monotonic() > deadline:
                        raise RuntimeError("the backend did not start listening") from None
                    time.sleep(0.2)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=60)
