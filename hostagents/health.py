"""What `GET /api/v1/health` answers, on an agent and on the backend.

The GPU probe imports torch (seconds, sometimes tens of them on a loaded machine) and is computed
once per process: a GPU does not come and go while a process runs. It runs in a background
thread, started by `start_gpu_probe()` (an agent calls it at start-up) or by the first health
read, and health never waits for it: until it is done `gpu` says `"probing": true` and `gpu` is
not among the capabilities. So a fresh agent answers its first health as soon as it listens.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections import Counter
from typing import Any

from hostagents.conf import VERSION, agent_roles, agent_setting, is_agent
from operations.conf import ktrdr_setting
from operations.models import ACTIVE_STATUSES, Operation
from operations.selectors import dependency_checks

logger = logging.getLogger(__name__)

_gpu: dict[str, Any] | None = None
_gpu_lock = threading.Lock()
_gpu_probe: threading.Thread | None = None
PROBING: dict[str, Any] = {
    "available": False,
    "device_name": None,
    "device_count": 0,
    "probing": True,
}

# Agent requests served, by route (method + route name); exposed in health for tests and benches.
served: Counter[str] = Counter()
_served_lock = threading.Lock()


def count_served(key: str) -> None:
    # Several agent HTTP threads count at once, and `Counter[k] += 1` is not atomic.
    with _served_lock:
        served[key] += 1


def _probe_gpu() -> dict[str, Any]:
    info: dict[str, Any] = {
        "available": False,
        "device_name": None,
        "device_count": 0,
        "probing": False,
    }
    try:
        import torch

        if torch.cuda.is_available():
            count = torch.cuda.device_count()
            info.update(
                available=count > 0,
                device_name=torch.cuda.get_device_name(0) if count else None,
                device_count=count,
            )
    except Exception:  # no torch, broken driver: report "no GPU", never fail health
        logger.exception("GPU probe failed; reporting no GPU")
    return info


def _run_probe() -> None:
    global _gpu
    result = _probe_gpu()
    with _gpu_lock:
        _gpu = result


def start_gpu_probe() -> None:
    """Start the GPU probe in the background (once per process)."""
    global _gpu_probe
    with _gpu_lock:
        if _gpu is not None or _gpu_probe is not None:
            return
        _gpu_probe = threading.Thread(target=_run_probe, name="gpu-probe", daemon=True)
        _gpu_probe.start()


def gpu_info() -> dict[str, Any]:
    """The probe's result, or `PROBING` while it runs; never waits on torch."""
    if _gpu is not None:
        return _gpu
    start_gpu_probe()
    return _gpu if _gpu is not None else dict(PROBING)


def capabilities() -> list[str]:
    """What this process can take: its roles, plus `gpu` when a CUDA device is present."""
    caps = set(agent_roles()) if is_agent() else set()
    if not is_agent() and ktrdr_setting("LOCAL_EXECUTION"):
        caps.add("local")
    if gpu_info()["available"]:
        caps.add("gpu")
    return sorted(caps)


def health_payload() -> dict[str, Any]:
    """Liveness and what this process can take. `status` is "ok", or "degraded" when the
    database or the cache does not answer (`checks` says which and why)."""
    checks = dependency_checks()
    running = []
    if checks["database"]["ok"]:
        active = Operation.objects.filter(status__in=ACTIVE_STATUSES).order_by("created_at")
        running = [
            {
                "operation_id": op.operation_id,
                "operation_type": op.operation_type,
                "status": op.status,
                "percentage": op.percentage,
            }
            for op in active[:100]
        ]
    agent = is_agent()
    body: dict[str, Any] = {
        "status": "ok" if all(c["ok"] for c in checks.values()) else "degraded",
        "checks": checks,
        "role": "agent" if agent else "backend",
        "name": str(agent_setting("AGENT_NAME") or socket.gethostname()) if agent else "backend",
        "version": VERSION,
        "roles": sorted(agent_roles()) if agent else [],
        "capabilities": capabilities(),
        "gpu": dict(gpu_info()),
        "running_operations": running,
        "running_count": len(running),
    }
    if agent:
        with _served_lock:
            body["served"] = dict(served)
    return body
