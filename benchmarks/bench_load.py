"""Viewers against a real server: 50 browsers polling 10 running operations once a second.

A daphne backend runs in its own process on loopback (DEBUG off, as deployed). Ten long
countdowns run in it. Fifty viewers poll as `static/ktrdr/live.js` does — the list fragment or a
live detail fragment, once a second, sending their ETag back and following their metrics
cursor — over keep-alive connections from one asyncio client. The same fifty then poll the
floor (`benchmarks.urls.floor`) for comparison. Figures: latency p50/p95 and the server
process's CPU as a share of one core (from /proc), per phase.

Runs on the configured database; again on PostgreSQL + Redis through `benchmarks.setup`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in {None, ""}:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.setup import PRODUCTION_ENV, bench_label, django_ready, on_postgres

Row = tuple[str, str, str]

VIEWERS = 50
RUNNING = 10
SECONDS = 12.0
ROOT = Path(__file__).resolve().parent.parent
CURSOR = re.compile(rb"\?cursor=(\d+)")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of the process and its children alive now (a gunicorn master's workers)."""
    ticks, parents = 0, {pid}
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stats[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
    while True:
        more = {p for p, f in stats.items() if int(f[1]) in parents and p not in parents}
        if not more:
            break
        parents |= more
    for p in parents:
        if p in stats:
            ticks += int(stats[p][11]) + int(stats[p][12])
    return ticks / os.sysconf("SC_CLK_TCK")


SERVERS = {
    "daphne": ["-m", "daphne", "-b", "127.0.0.1", "-p", "{port}", "ktrdr_site.asgi:application"],
    "uvicorn": [
        "-m",
        "uvicorn",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--no-access-log",
        "--log-level",
        "warning",
        "ktrdr_site.asgi:application",
    ],
    "gunicorn": [
        "-m",
        "gunicorn",
        "-b",
        "127.0.0.1:{port}",
        "-w",
        "1",
        "--threads",
        "4",
        "ktrdr_site.wsgi:application",
    ],
}


@contextlib.contextmanager
def _server(port: int, server: str):
    env = {
        **os.environ,
        **PRODUCTION_ENV,
        "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
        "KTRDR_LOCAL_WORKERS": str(RUNNING + 2),
        "KTRDR_LOG_LEVEL": "WARNING",
        "DJANGO_LOG_LEVEL": "ERROR",
    }
    # The server's output goes to a file: a pipe nobody reads fills up (an access line per
    # request) and blocks the server.
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            [sys.executable, *(arg.format(port=port) for arg in SERVERS[server])],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        proc.log = log
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def _log_tail(proc: subprocess.Popen) -> str:
    proc.log.seek(0)
    return proc.log.read()[-2000:]


class Connection:
    """One keep-alive HTTP/1.1 connection: enough of the protocol for GET and a small POST."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, headers: dict, body: bytes = b""):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        if body:
            head.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        status = int((await self.reader.readline()).split()[1])
        answer: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            key, _, value = line.decode("latin-1").partition(":")
            answer[key.strip().lower()] = value.strip()
        if answer.get("transfer-encoding") == "chunked":
            data = b""
            while size := int((await self.reader.readline()).strip(), 16):
                data += await self.reader.readexactly(size)
                await self.reader.readline()
            await self.reader.readline()
        else:
            data = await self.reader.readexactly(int(answer.get("content-length", 0)))
        if answer.get("connection", "").lower() == "close":
            self.writer.close()
            self.writer = None
        return status, answer, data


async def _viewer(port: int, path: str, headers: dict, *, until: float, latencies: list, errors):
    conn = Connection(port)
    etag = None
    await asyncio.sleep(random.random())  # viewers don't all open their tab at the same instant
    while time.monotonic() < until:
        started = time.monotonic()
        sent = dict(headers)
        if etag:
            sent["If-None-Match"] = etag
        try:
            status, answer, body = await conn.request("GET", path, sent)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            errors.append(repr(exc))
            conn = Connection(port)
            await asyncio.sleep(1.0)
            continue
        latencies.append(time.monotonic() - started)
        if status == 200:
            etag = answer.get("etag", etag)
            if found := CURSOR.search(body):
                path = path.split("?", 1)[0] + "?cursor=" + found.group(1).decode()
        elif status != 304:
            errors.append(f"{path}: HTTP {status}")
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))


def _phase(port: int, pid: int, targets: list[tuple[str, dict]]) -> dict:
    latencies: list[float] = []
    errors: list[str] = []

    async def run() -> None:
        until = time.monotonic() + SECONDS
        await asyncio.gather(
            *(
                _viewer(port, p, h, until=until, latencies=latencies, errors=errors)
                for p, h in targets
            )
        )

    cpu0, wall0 = _cpu_seconds(pid), time.monotonic()
    asyncio.run(run())
    cpu, wall = _cpu_seconds(pid) - cpu0, time.monotonic() - wall0
    if errors:
        raise RuntimeError(f"{len(errors)} failed polls, e.g. {errors[:3]}")
    q = statistics.quantiles(latencies, n=100)
    return {
        "p50": statistics.median(latencies) * 1e3,
        "p95": q[94] * 1e3,
        "cpu": cpu / wall,
        "rps": len(latencies) / wall,
    }


def _wait_ready(port: int, proc: subprocess.Popen, headers: dict) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {_log_tail(proc)}")
        try:
            status, _, _ = asyncio.run(Connection(port).request("GET", "/bench/floor/", headers))
            if status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the server did not answer within 120 s: {_log_tail(proc)}")


def measure() -> list[Row]:
    import importlib.util

    rows: list[Row] = []
    for name in os.environ.get("KTRDR_BENCH_SERVERS", "daphne").split(","):
        server = name.strip()
        if server not in SERVERS:
            raise SystemExit(f"KTRDR_BENCH_SERVERS: {server!r} is not one of {sorted(SERVERS)}")
        if importlib.util.find_spec(server) is None:
            rows.append((f"{bench_label()} load ({server})", "not measured: not installed", ""))
            continue
        rows += _measure(server)
    return rows


def _measure(server: str) -> list[Row]:
    import json

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from rest_framework.authtoken.models import Token

    label = bench_label()
    user = get_user_model().objects.create_user(username=f"load-{time.time_ns()}", password="x")
    token = Token.objects.create(user=user).key
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.create()
    cookie = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={session.session_key}"}
    port = _free_port()
    with _server(port, server) as proc:
        _wait_ready(port, proc, cookie)

        async def start() -> list[str]:
            conn = Connection(port)
            ids = []
            for _ in range(RUNNING):
                body = json.dumps({"steps": 100_000, "step_seconds": 0.2}).encode()
                status, _, data = await conn.request(
                    "POST",
                    "/api/v1/operations/countdown/",
                    {"Authorization": f"Token {token}", "Content-Type": "application/json"},
                    body,
                )
                if status != 202:
                    raise RuntimeError(f"starting a countdown answered {status}: {data[:200]}")
                ids.append(json.loads(data)["operation_id"])
            return ids

        ids = asyncio.run(start())
        time.sleep(2.0)
        cpu0, wall0 = _cpu_seconds(proc.pid), time.monotonic()
        time.sleep(5.0)
        idle = (_cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - wall0)
        floor = _phase(port, proc.pid, [("/bench/floor/", cookie)] * VIEWERS)
        table = {**cookie, "HX-Request": "true", "HX-Target": "operations-table"}
        live = {**cookie, "HX-Request": "true", "HX-Target": "operation-live"}
        mix = [("/operations/", table)] * (VIEWERS * 2 // 5)
        mix += [
            (f"/operations/{ids[i % RUNNING]}/?cursor=0", live) for i in range(VIEWERS - len(mix))
        ]
        real = _phase(port, proc.pid, mix)
    who = f"{VIEWERS} viewers × {RUNNING} running, 1 s polls ({server}, 1 process)"
    return [
        (f"{label} {who}: no viewer (the runs' own upkeep)", f"{idle:.0%} of a core", ""),
        (
            f"{label} {who}: floor",
            f"p50 {floor['p50']:.1f} / p95 {floor['p95']:.1f} ms; {floor['cpu']:.0%} of a core "
            f"({floor['rps']:.0f} req/s)",
            "",
        ),
        (
            f"{label} {who}: list + detail fragments",
            f"p50 {real['p50']:.1f} / p95 {real['p95']:.1f} ms; {real['cpu']:.0%} of a core "
            f"({real['rps']:.0f} req/s)",
            "p95 < 100 ms, < 50 % of a core",
        ),
    ]


def run() -> list[Row]:
    django_ready()
    return measure() + on_postgres("load")


if __name__ == "__main__":
    from benchmarks.setup import main_child

    main_child(measure)
