"""Django set-up for benchmarks: a throwaway KTRDR_HOME and a migrated database."""

from __future__ import annotations

import os
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

_READY = False

PRODUCTION_ENV = {
    "DJANGO_DEBUG": "0",
    # One key for this run and the processes it starts (a server checks the sessions made here).
    "DJANGO_SECRET_KEY": os.environ.setdefault("KTRDR_BENCH_SECRET_KEY", os.urandom(24).hex()),
    "DJANGO_ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
    "DJANGO_SECURE_SSL_REDIRECT": "0",
    "DJANGO_SECURE_COOKIES": "0",
}


def django_ready() -> Path:
    """Configure Django on a temporary home (unless one is set) and migrate. Idempotent."""
    global _READY
    home = Path(os.environ.setdefault("KTRDR_HOME", tempfile.mkdtemp(prefix="ktrdr-bench-")))
    if _READY:
        return home
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ktrdr_site.settings")
    # Measured as deployed: DEBUG off (no query log, no debug pages), behind a TLS proxy.
    for key, value in PRODUCTION_ENV.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("KTRDR_LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_LOG_LEVEL", "WARNING")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    _READY = True
    return home


def median_per_call(fn: Callable[[], object], *, calls: int = 10_000, rounds: int = 25) -> float:
    """Median seconds per call over `rounds` batches of `calls` (timer overhead amortised)."""
    import time

    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - t0) / calls)
    return statistics.median(samples)


def fmt_us(seconds: float) -> str:
    return f"{seconds * 1e6:.3f} µs"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms"


def write_cost(make_loop, floor, *, calls: int = 20_000, rounds: int = 41) -> float:
    """Median thread CPU seconds per call: `make_loop()` (a fresh bridge each round) run for
    `calls` iterations, minus `floor`, an empty loop of the same shape. Thread CPU
    (`time.thread_time`) is blind to other processes and threads taking the core; GC is off
    while timing, as `timeit` does."""
    import gc
    import time

    clock = time.thread_time
    samples = []
    for _ in range(rounds):
        loop = make_loop()
        gc.disable()
        try:
            t0 = clock()
            loop(calls)
            t1 = clock()
            floor(calls)
            t2 = clock()
        finally:
            gc.enable()
        samples.append(((t1 - t0) - (t2 - t1)) / calls)
    return statistics.median(samples)


# --- The same benchmark on PostgreSQL + Redis ---------------------------------------------------

CHILD_ENV = "KTRDR_BENCH_CHILD"
PG_URL = os.environ.get("KTRDR_BENCH_DATABASE_URL", "postgresql://127.0.0.1:5432/ktrdr_bench")
REDIS_URL = os.environ.get("KTRDR_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
ROWS_MARK = "KTRDR-BENCH-ROWS "


def bench_label() -> str:
    """`[sqlite]` or `[postgresql+redis]`: which database and cache this process measures."""
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    redis = "redis" in settings.CACHES["default"]["BACKEND"].lower()
    return f"[{engine}{'+redis' if redis else ''}]"


def _fresh_postgres() -> str:
    """Drop and create the benchmark database; the reason it can't be had, or ''."""
    import psycopg

    name = PG_URL.rsplit("/", 1)[-1]
    admin = PG_URL.rsplit("/", 1)[0] + "/postgres"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        return f"PostgreSQL at {PG_URL} unavailable: {type(exc).__name__}: {exc}".splitlines()[0]
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).flushdb()
    except Exception as exc:
        return f"Redis at {REDIS_URL} unavailable: {type(exc).__name__}: {exc}".splitlines()[0]
    return ""


def on_postgres(name: str) -> list[tuple[str, str, str]]:
    """Run `benchmarks.bench_<name>` again in a child on PostgreSQL + Redis and return its rows
    (nothing when this process is that child; one row saying why when they don't answer)."""
    import json
    import subprocess
    import sys

    if os.environ.get(CHILD_ENV):
        return []
    why = _fresh_postgres()
    if why:
        return [(f"[postgresql+redis] {name}", f"not measured: {why}", "")]
    env = {
        **os.environ,
        CHILD_ENV: "1",
        "DATABASE_URL": PG_URL,
        "REDIS_URL": REDIS_URL,
        "KTRDR_CACHE_PREFIX": "ktrdr-bench",
        "KTRDR_HOME": tempfile.mkdtemp(prefix="ktrdr-bench-pg-"),
    }
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.bench_{name}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    for line in done.stdout.splitlines():
        if line.startswith(ROWS_MARK):
            return [tuple(r) for r in json.loads(line.removeprefix(ROWS_MARK))]
    tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
    raise RuntimeError(f"bench_{name} on PostgreSQL failed ({done.returncode}): {tail}")


def main_child(measure: Callable[[], list[tuple[str, str, str]]]) -> None:
    """`python -m benchmarks.bench_<name>`: the rows as a table, or as JSON for a parent."""
    import json

    django_ready()
    rows = measure()
    if os.environ.get(CHILD_ENV):
        print(ROWS_MARK + json.dumps(rows))
    else:
        from benchmarks.__main__ import print_table

        print_table(Path(sys_argv0()).stem, rows)


def sys_argv0() -> str:
    import sys

    return sys.argv[0]
