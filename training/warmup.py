"""torch, imported once per process before its first training run, in the processes that train.

torch takes seconds to import, and its optimisers import `torch._dynamo` (seconds more) when the
first one is built; done inside the first run, that was most of a short run's time. So a process
that hosts training runs starts `start_warmup()` from `TrainingConfig.ready()`: one daemon thread
imports torch and takes a single optimiser step on a one-element tensor (no global RNG, no
device), which loads everything a run's first step would. The executor calls `torch_ready()`
before its first torch call: it waits for that warm-up, or, in a process that did not warm up,
does it there, in the run's own thread, as before.

Which processes warm up (`hosts_training`): the servers that run local training (`manage.py
runserver`'s serving process, daphne/uvicorn/gunicorn serving `ktrdr_site.asgi`), an agent
serving with the `training` role (`run_agent` after it re-executed itself), and `manage.py train`
while it follows its run. Every other command (migrate, check, ops, load_data, shell…) and the
test suite never import torch unless they train. A backend with local execution off trains
nothing itself and does not warm up either.

torch stays imported inside functions only (docs/architecture.md §2) and never on an event loop
(§9): the import runs in its own thread, and `torch_ready()` is called from worker threads.
No Django imports.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

# Programs that serve the project's ASGI/WSGI application themselves.
SERVERS = frozenset({"daphne", "uvicorn", "gunicorn", "hypercorn"})
DJANGO_PROGRAMS = frozenset({"manage.py", "django-admin"})

# Held through the warm-up, so a run that asks meanwhile waits for it instead of importing twice.
_warm_lock = threading.Lock()
_warm = False
_start_lock = threading.Lock()
_thread: threading.Thread | None = None


def _command(argv: Sequence[str]) -> str | None:
    """The management command `argv` runs, or None when it is not a Django command line."""
    if not argv:
        return None
    program = Path(argv[0])
    django_main = program.name == "__main__.py" and program.parent.name == "django"
    if program.name not in DJANGO_PROGRAMS and not django_main:
        return None
    return argv[1] if len(argv) > 1 else ""


def hosts_training(
    argv: Sequence[str],
    environ: Mapping[str, str],
    *,
    local_execution: bool,
    role: str,
    agent_roles: str,
) -> bool:
    """Whether the process started as `argv` runs training in its own threads (see above)."""
    if not local_execution:
        return False
    if argv and Path(argv[0]).name in SERVERS:
        return True
    command = _command(argv)
    if command == "runserver":
        # With the autoreloader, the parent only watches files; the child serves (RUN_MAIN).
        return "--noreload" in argv or environ.get("RUN_MAIN") == "true"
    if command == "run_agent":
        # The first process re-executes itself as the agent; only that one serves.
        roles = {r.strip() for r in agent_roles.split(",")}
        return role == "agent" and "training" in roles
    if command == "train":
        # --no-follow returns at once: only runs an agent takes are accepted that way.
        return "--no-follow" not in argv
    return False


def _warm_up() -> None:
    global _warm
    with _warm_lock:
        if _warm:
            return
        import torch

        # One optimiser step loads what a run's first one would (torch._dynamo among it).
        weight = torch.zeros(1, requires_grad=True)
        optimizer = torch.optim.Adam([weight], lr=0.0)
        (weight * 2.0).sum().backward()
        optimizer.step()
        _warm = True


def _background() -> None:
    try:
        _warm_up()
    except Exception:  # the first run imports torch itself and fails with the real error
        logger.exception("torch warm-up failed; the first training run will import torch")


def start_warmup() -> None:
    """Start the warm-up in a daemon thread (once per process); returns at once."""
    global _thread
    with _start_lock:
        if _warm or _thread is not None:
            return
        _thread = threading.Thread(target=_background, name="torch-warmup", daemon=True)
        _thread.start()


def torch_ready() -> None:
    """Return once torch is imported and warm: waits for the warm-up, or does it here.

    Raises what importing torch raises, so a run in a process without torch fails with that.
    """
    if not _warm:
        _warm_up()
