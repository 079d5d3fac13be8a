"""Fixtures for the host-agent tests: real agent processes on loopback ports.

Agents are started with `manage.py run_agent` in a temporary KTRDR_HOME with a test token, waited
for through `/api/v1/health`, and killed at teardown. The backend side runs in the test process
(Django test client, transactional database) and reaches them through the real `AgentClient`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from hostagents.agent_urls import REFRESH_ROUTE
from hostagents.client import reset_clients
from hostagents.tls import write_self_signed

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-agent-token-0123456789-abcdefghijklmn"
AGENT_TTL = "0.2"
# What an agent's health counts for each refresh the backend sends it.
SERVED_REFRESH = f"GET {REFRESH_ROUTE}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AgentProcess:
    """One `run_agent` subprocess; restartable on the same port (same or fresh home)."""

    def __init__(
        self,
        name: str,
        home: Path,
        roles: str = "training,ib",
        env: dict[str, str] | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.name = name
        self.extra_env = dict(env or {})
        self.home = home
        self.roles = roles
        # (certificate, key): served over HTTPS, and this side trusts exactly that certificate.
        self.tls = tls
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.session = self._session()
        self.log = home.parent / f"{name}.log"

    def _session(self) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {TOKEN}"
        if self.tls is not None:
            # Not the environment's REQUESTS_CA_BUNDLE, which requests would prefer to this.
            session.trust_env = False
            session.verify = str(self.tls[0])
        return session

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self, *, home: Path | None = None, timeout: float = 120.0) -> AgentProcess:
        if home is not None:
            self.home = home
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"KTRDR_ROLE", "KTRDR_URLCONF", "KTRDR_HOME", "DJANGO_SETTINGS_MODULE"}
        }
        env.update(
            {
                "KTRDR_AGENT_TOKEN": TOKEN,
                "KTRDR_OPERATIONS_CACHE_TTL": AGENT_TTL,
                "KTRDR_LOG_LEVEL": "WARNING",
                "DJANGO_LOG_LEVEL": "ERROR",
                "PYTHONUNBUFFERED": "1",
                **self.extra_env,
            }
        )
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "manage.py", "run_agent", "--roles", self.roles,
                    "--port", str(self.port), "--home", str(self.home), "--name", self.name,
                    *(["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
                      if self.tls else []),
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"agent {self.name} exited: {self.log.read_text()[-2000:]}")
            try:
                if self.session.get(f"{self.url}/api/v1/health", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"agent {self.name} not ready: {self.log.read_text()[-2000:]}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.session.close()
        self.session = self._session()

    # --- direct calls (what the agent itself says) ---------------------------------------------
    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(f"{self.url}{path}", timeout=10, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.post(f"{self.url}{path}", timeout=10, **kwargs)

    def start_work(
        self,
        operation_type: str,
        params: Any,
        *,
        key: str | None = None,
        inputs: list[dict[str, Any]] | None = None,
    ) -> requests.Response:
        """POST a start of a registered kind, as the backend's agent place does."""
        body: dict[str, Any] = {"operation_type": operation_type, "params": params}
        if inputs is not None:
            body["inputs"] = inputs
        headers = {"Idempotency-Key": key} if key else {}
        return self.post("/api/v1/starts/", json=body, headers=headers)

    def operation(self, remote_id: str) -> dict[str, Any]:
        return self.get(f"/api/v1/operations/{remote_id}/").json()

    def served(self) -> dict[str, int]:
        return self.get("/api/v1/health").json()["served"]


@pytest.fixture(scope="session")
def agent_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []
    base = tmp_path_factory.mktemp("agents")

    def make(
        name: str,
        roles: str = "training,ib",
        env: dict[str, str] | None = None,
        tls: bool = False,
    ) -> AgentProcess:
        home = base / f"{name}-home-{len(started)}"
        pair = write_self_signed(home.parent / f"{home.name}-tls", ["127.0.0.1"]) if tls else None
        agent = AgentProcess(name, home, roles=roles, env=env, tls=pair)
        started.append(agent)
        return agent.start()

    yield make
    for agent in started:
        agent.kill()


@pytest.fixture(scope="session")
def agent(agent_factory: Callable[..., AgentProcess]) -> AgentProcess:
    """The shared agent (training + ib roles) most tests use."""
    return agent_factory("shared")


@pytest.fixture
def backend_settings(settings: Any) -> Iterator[Any]:
    """Backend knobs for talking to test agents: the token, short TTLs and timeouts."""
    from django.core.cache import cache

    settings.KTRDR = {
        **settings.KTRDR,
        "AGENT_TOKEN": TOKEN,
        "AGENTS": "",
        "OPERATIONS_CACHE_TTL": 0.2,
        "AGENT_CONNECT_TIMEOUT": 1.0,
        "AGENT_READ_TIMEOUT": 1.0,
        "AGENT_RETRIES": 1,
        "AGENT_RETRY_BACKOFF": 0.02,
        "AGENT_HEALTH_TTL": 0.5,
        "LOCAL_EXECUTION": True,
    }
    reset_clients()
    cache.clear()
    yield settings
    reset_clients()
    cache.clear()


@pytest.fixture
def api(django_user_model: Any) -> Any:
    from rest_framework.test import APIClient

    user = django_user_model.objects.create_user("alice", password="pw-alice-123")
    client = APIClient()
    client.force_authenticate(user)
    client.user = user
    return client


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
