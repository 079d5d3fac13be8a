"""Django set-up for benchmarks: a throwaway KTRDR_HOME and a migrated database."""

from __future__ import annotations

import os
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

_READY = False


def django_ready() -> Path:
    """Configure Django on a temporary home (unless one is set) and migrate. Idempotent."""
    global _READY
    home = Path(os.environ.setdefault("KTRDR_HOME", tempfile.mkdtemp(prefix="ktrdr-bench-")))
    if _READY:
        return home
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ktrdr_site.settings")
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
