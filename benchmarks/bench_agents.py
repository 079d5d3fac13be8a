"""Host-agent budgets (docs/architecture.md §8): a remote refresh over loopback with the pooled
connection against a new connection per request — over plain HTTP (an agent on the backend's
machine) and over HTTPS (`run_agent --tls-cert/--tls-key`, how an agent on another machine is
reached) —, the two-level cache hit rate with 10 readers, and the latency from a remote start to
the first progress a backend reader sees.

Starts its own agents (`manage.py run_agent`) on free loopback ports in temporary homes, the
HTTPS one with a self-signed ECDSA P-256 certificate (`hostagents.tls`) that the clients trust,
and waits until each has settled (its GPU probe and torch warm-up run in the background at
start-up and would be measured along). Standalone: `python benchmarks/bench_agents.py`; in the
suite: `make bench` (`python -m benchmarks agents`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

if __package__ in {None, ""}:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.setup import django_ready, fmt_ms

Row = tuple[str, str, str]
ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-agent-token-0123456789-abcdefghijklm"
# Refreshes per client in the pooled/new-connection comparison, and before it (not counted).
REFRESHES = 600
WARM_UP = 30
# An agent whose process uses less than this share of a core has finished starting up.
SETTLED_CPU = 0.10
SETTLE_SECONDS = 120.0
POOLED_FASTER = 0.30
POOLED_P95_S = 0.020


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _agent(*, tls: bool = False) -> Iterator[tuple[str, int, str]]:
    """A real agent process; yields its URL, pid and the certificate to trust ("" for plain
    HTTP) once it answers health."""
    import requests

    from hostagents.tls import write_self_signed

    port = _free_port()
    home = Path(tempfile.mkdtemp(prefix="ktrdr-bench-agent-"))
    cert, key = write_self_signed(home / "tls", ["127.0.0.1"]) if tls else (None, None)
    tls_args = ["--tls-cert", str(cert), "--tls-key", str(key)] if tls else []
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"KTRDR_ROLE", "KTRDR_URLCONF", "KTRDR_HOME", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(
        {
            "KTRDR_AGENT_TOKEN": TOKEN,
            "KTRDR_LOG_LEVEL": "WARNING",
            "DJANGO_LOG_LEVEL": "ERROR",
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "run_agent", "--roles", "training", "--port", str(port),
         "--home", str(home), "--name", "bench", *tls_args],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    session = requests.Session()
    session.trust_env = False  # the certificate below, not the environment's CA bundle
    session.verify = str(cert) if tls else True
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = session.get(
                    f"{url}/api/v1/health", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
                )
                if r.status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the benchmark agent did not start")
            time.sleep(0.1)
        yield url, proc.pid, str(cert or "")  # run_agent re-executes itself: same pid
    finally:
        session.close()
        proc.kill()
        proc.wait(timeout=10)


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process (Linux /proc), or None where that cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _settle(client: Any, pid: int) -> str:
    """Wait until the agent's GPU probe is done and its process is idle; says how long it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < SETTLE_SECONDS:
        busy = _cpu_seconds(pid)
        time.sleep(0.5)
        after = _cpu_seconds(pid)
        probing = client.health()["gpu"].get("probing")
        if busy is None or after is None:
            if not probing:
                return f"probe done after {time.monotonic() - t0:.0f} s"
            continue
        if not probing and (after - busy) / 0.5 < SETTLED_CPU:
            return f"settled after {time.monotonic() - t0:.0f} s"
    return f"NOT settled after {SETTLE_SECONDS:.0f} s (start-up work measured along)"


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def _timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _wait(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("benchmark condition not met")
        time.sleep(0.01)


def _start(client: Any, key: str, **params: Any) -> str:
    body = {"operation_type": "countdown", "params": params}
    return client.start(body, idempotency_key=key)["operation_id"]


def _end(client: Any, remote_id: str) -> None:
    """Cancel a run and wait until it ended: the agent's two workers must be free for the next
    measurement, or it measures the queue instead of the machinery."""
    from hostagents.client import AgentRejected

    with contextlib.suppress(AgentRejected):  # 409: it already ended
        client.cancel(remote_id, "benchmark step done")
    _wait(
        lambda: (
            client.get_operation(remote_id, force_refresh=True)["status"]
            in {"cancelled", "completed", "failed"}
        )
    )


def _refresher(client: Any, remote_id: str) -> Callable[[], None]:
    """One refresh as `AgentPlace.refresh` makes it (`AgentClient.refresh`), the cursor carried
    from one to the next as the backend stores it: each brings the records since the last."""
    cursor = [0]

    def refresh() -> None:
        _operation, _records, cursor[0] = client.refresh(remote_id, cursor=cursor[0])

    return refresh


def _refresh_rows(url: str, pid: int, ca_bundle: str = "") -> list[Row]:
    """Pooled connection vs a new connection per request, for the same refresh, interleaved
    call by call (so load on the machine falls on both alike), against a running countdown (a
    metric every 10 ms, its owner storing a pull every agent TTL). Over plain HTTP also the two
    GETs an agent without the one-request refresh costs."""
    from hostagents.client import AgentClient

    tls = bool(ca_bundle)
    transport = "HTTPS" if tls else "HTTP"
    pooled = AgentClient("bench", url, TOKEN, pooled=True, ca_bundle=ca_bundle)
    fresh = AgentClient("bench", url, TOKEN, pooled=False, ca_bundle=ca_bundle)
    settled = _settle(pooled, pid)
    remote_id = _start(pooled, "bench-refresh", steps=100_000, step_seconds=0.01)
    _wait(lambda: pooled.get_operation(remote_id)["progress"]["steps_completed"] >= 1)
    contenders = {
        "pooled": _refresher(pooled, remote_id),
        "fresh": _refresher(fresh, remote_id),
    }
    if not tls:
        # What an agent older than the one-request refresh costs: the operation GET + metrics GET.
        two_gets = AgentClient("bench", url, TOKEN, pooled=True)
        two_gets.refresh_legacy_until = float("inf")
        contenders["two_gets"] = _refresher(two_gets, remote_id)
    for refresh in contenders.values():
        _timed(refresh, WARM_UP)  # imports, first connection
    sent_before = pooled.requests_sent.total()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    order = list(contenders)
    for i in range(REFRESHES):
        # Each in turn, the order rotated, so neither drift nor position favours one.
        turn = i % len(order)
        for name in order[turn:] + order[:turn]:
            t0 = time.perf_counter()
            contenders[name]()
            samples[name].append(time.perf_counter() - t0)
    per_refresh = (pooled.requests_sent.total() - sent_before) / REFRESHES
    _end(pooled, remote_id)

    p50, p95 = _pct(samples["pooled"], 0.5), _pct(samples["pooled"], 0.95)
    f50, f95 = _pct(samples["fresh"], 0.5), _pct(samples["fresh"], 0.95)
    faster = 1.0 - p50 / f50
    verdict = "met" if faster >= POOLED_FASTER else "NOT met"
    rows = [
        (
            f"remote refresh over {transport} (AgentClient.refresh), pooled p50 / p95",
            f"{fmt_ms(p50)} / {fmt_ms(p95)}",
            f"p95 < {POOLED_P95_S * 1e3:.0f} ms: {'met' if p95 < POOLED_P95_S else 'NOT met'}",
        ),
        (
            f"remote refresh over {transport}, new connection per request p50 / p95",
            f"{fmt_ms(f50)} / {fmt_ms(f95)}",
            "baseline: a new session (TCP connection"
            + (", TLS handshake)" if tls else ")")
            + " per request",
        ),
        (
            f"pooled vs new connection over {transport} (p50)",
            f"{faster * 100:.0f} % faster ({f50 / p50:.2f}x)",
            f"≥ {POOLED_FASTER * 100:.0f} % faster: {verdict}",
        ),
        (
            f"requests per refresh (pooled, {transport})",
            f"{per_refresh:.2f}",
            f"1: operation + new metrics in one answer; {REFRESHES} refreshes each, interleaved; "
            f"agent {settled}",
        ),
    ]
    if not tls:
        t50, t95 = _pct(samples["two_gets"], 0.5), _pct(samples["two_gets"], 0.95)
        rows.append(
            (
                "remote refresh, 2 GETs (agent without it), pooled p50 / p95",
                f"{fmt_ms(t50)} / {fmt_ms(t95)}",
                "for comparison",
            )
        )
    return rows


def _backend_rows(url: str) -> list[Row]:
    from django.conf import settings
    from django.db import connection

    from hostagents import services as agent_services
    from hostagents.client import client_for, reset_clients
    from operations import selectors
    from operations.countdown import COUNTDOWN
    from operations.models import Executor, Operation
    from operations.places import remote_places

    def start_remote(*, metadata: dict) -> Operation:
        place = remote_places()[Executor.AGENT]
        return place.start(kind=COUNTDOWN, target=agent, metadata=metadata)

    settings.KTRDR["AGENT_TOKEN"] = TOKEN
    settings.KTRDR["OPERATIONS_CACHE_TTL"] = 1.0
    reset_clients()
    agent, _ = agent_services.agent_add(name="bench", base_url=url)
    client = client_for(agent)
    rows: list[Row] = []

    # Full backend refresh (remote miss incl. recording the pull in the database).
    op = start_remote(metadata={"steps": 3000, "step_seconds": 0.01})
    _timed(lambda: selectors.operation_get(operation_id=op.operation_id, force_refresh=True), 10)
    samples = _timed(
        lambda: selectors.operation_get(operation_id=op.operation_id, force_refresh=True), 200
    )
    rows.append(
        (
            "backend operation_get remote miss p50/p95",
            f"{fmt_ms(_pct(samples, 0.5))} / {fmt_ms(_pct(samples, 0.95))}",
            "incl. DB write of the pull",
        )
    )

    # Two-level cache: 10 readers polling every 100 ms for 5 s (backend TTL 1 s, agent 0.25 s).
    before = client.requests_sent[("GET", "refresh")]
    reads = [0]
    lock = threading.Lock()
    stop = time.monotonic() + 5.0

    def reader() -> None:
        from django.db import connection as thread_connection

        try:
            while time.monotonic() < stop:
                selectors.operation_get(operation_id=op.operation_id)
                with lock:
                    reads[0] += 1
                time.sleep(0.1)
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=reader) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    agent_requests = client.requests_sent[("GET", "refresh")] - before
    hit_rate = 1.0 - agent_requests / max(reads[0], 1)
    rows.append(
        (
            "two-level cache, 10 readers x 5 s",
            f"{reads[0]} reads → {agent_requests} agent refreshes (hit rate {hit_rate:.1%})",
            "≤ 1 refresh per TTL window (≥ 90 %)",
        )
    )
    _end(client, Operation.objects.get(pk=op.pk).remote_operation_id)

    # Start → first progress seen by a backend reader (dispatch POST, agent worker, pull).
    latencies = []
    for _ in range(10):
        t0 = time.perf_counter()
        started = start_remote(metadata={"steps": 50, "step_seconds": 0.01})

        def progressed(op_id: str = started.operation_id) -> bool:
            got = selectors.operation_get(operation_id=op_id, force_refresh=True)
            return (got.progress or {}).get("steps_completed", 0) >= 1

        _wait(progressed)
        latencies.append(time.perf_counter() - t0)
        _end(client, Operation.objects.get(pk=started.pk).remote_operation_id)
    rows.append(
        (
            "remote start → first progress seen by a backend reader, p50 / max",
            f"{fmt_ms(statistics.median(latencies))} / {fmt_ms(max(latencies))}",
            "backend TTL 1 s, agent TTL 0.25 s (run_agent default)",
        )
    )

    # The machinery alone: start on the agent → its worker's first step visible (forced read).
    direct = []
    for i in range(10):
        t0 = time.perf_counter()
        remote_id = _start(client, f"bench-d{i}", steps=50, step_seconds=0.01)

        def moved(remote_id: str = remote_id) -> bool:
            got = client.get_operation(remote_id, force_refresh=True)
            return got["progress"]["steps_completed"] >= 1

        _wait(moved)
        direct.append(time.perf_counter() - t0)
        _end(client, remote_id)
    rows.append(
        (
            "agent start → first progress (forced read), p50 / max",
            f"{fmt_ms(statistics.median(direct))} / {fmt_ms(max(direct))}",
            "incl. one 10 ms step",
        )
    )
    # The agent goes with this benchmark: its operations and its registry row go too, or the
    # benchmarks after this one (same database) would list operations of a stopped agent.
    Operation.objects.filter(agent=agent.name).delete()
    agent.delete()
    reset_clients()
    connection.close()
    return rows


def run() -> list[Row]:
    django_ready()
    with _agent(tls=True) as (url, pid, cert):
        secure = _refresh_rows(url, pid, ca_bundle=cert)
    with _agent() as (url, pid, _no_cert):
        return _refresh_rows(url, pid) + secure + _backend_rows(url)


if __name__ == "__main__":
    for what, figure, note in run():
        print(f"{what:<64} {figure:<48} {note}")
