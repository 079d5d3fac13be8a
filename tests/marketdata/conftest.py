"""Fixtures for the marketdata tests: a temp DATA_DIR, API clients, the IB simulator."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from marketdata.gateways.ib import close_shared_connections
from marketdata.ibsim.server import IBGatewaySimulator, SimulatorThread
from marketdata.pacing import PacingRules, forget_shared_limiters
from operations import selectors
from operations.local import local_runs
from tests.shared_data import EURUSD_1H_CSV

EURUSD_CSV = EURUSD_1H_CSV

# Short waits everywhere: the suite stays fast, the rules stay the same.
FAST_KNOBS = {
    "DATA_LOAD_RETRY_BACKOFF": 0.05,
    "DATA_LOAD_MAX_BACKOFF": 0.2,
    "IB_PACING_BACKOFF": 0.2,
    "IB_REQUEST_TIMEOUT": 5.0,
    "IB_CONNECT_TIMEOUT": 5.0,
    "IB_PACING": False,
    "OPERATIONS_CACHE_TTL": 0.0,
}


@pytest.fixture
def data_dir(settings, tmp_path: Path) -> Path:
    path = tmp_path / "data"
    settings.KTRDR = {**settings.KTRDR, "DATA_DIR": path, **FAST_KNOBS}
    # The data home holds the IB pacing ledgers (one file per endpoint): one per test.
    settings.DATA_ROOT = tmp_path
    return path


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user("tester", password="pw-for-tests-only")


@pytest.fixture
def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def simulator_factory(settings, data_dir) -> Iterator:
    """Start simulators (in-process, free loopback port) and point KTRDR_IB_* at the last one."""
    running: list[SimulatorThread] = []

    def start(**kwargs) -> IBGatewaySimulator:
        kwargs.setdefault("pacing", PacingRules())
        sim = IBGatewaySimulator(port=0, **kwargs)
        thread = SimulatorThread(sim)
        thread.start()
        running.append(thread)
        settings.KTRDR = {
            **settings.KTRDR,
            "IB_HOST": "127.0.0.1",
            "IB_PORT": sim.port,
            "IB_CLIENT_ID": 11,
        }
        return sim

    yield start
    local_runs.wait_idle(30)
    # The process-wide IB connections and pacing limiters belong to these simulators' ports.
    close_shared_connections()
    forget_shared_limiters()
    for thread in running:
        thread.stop()


def wait_terminal(operation_id: str, timeout: float = 60.0):
    """Poll through the one read path until the operation ends."""
    deadline = time.monotonic() + timeout
    while True:
        op = selectors.operation_get(operation_id=operation_id, force_refresh=True)
        if op.is_terminal:
            return op
        if time.monotonic() > deadline:
            raise AssertionError(f"{operation_id} still {op.status}: {op.progress}")
        time.sleep(0.05)
