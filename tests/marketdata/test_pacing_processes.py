"""Two processes on one IB endpoint share one pacing budget: two `manage.py load_data --source
ib` against `manage.py ib_gateway_sim` (IB's real rules, enforced in real time) draw no 162."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from operations.models import Operation
from tests.processes import ROOT, manage

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_load_processes_on_one_endpoint_draw_no_pacing_violation(tmp_path):
    port = free_port()
    stats = tmp_path / "sim-stats.json"
    with open(tmp_path / "sim.log", "wb") as log:
        sim = subprocess.Popen(
            [sys.executable, "manage.py", "ib_gateway_sim", "--port", str(port),
             "--stats-file", str(stats)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, (tmp_path / "sim.log").read_text()
            time.sleep(0.1)
        home = tmp_path / "home"  # one data home: one pacing ledger for the endpoint
        env = {"KTRDR_HOME": str(home), "KTRDR_IB_HOST": "127.0.0.1", "KTRDR_IB_PORT": str(port)}
        # One contract (EURUSD MIDPOINT), two series: IB's "< 6 per contract in 2 s" binds
        # across both processes; 13 + 13 requests stay under 60 per 10 minutes.
        loads = [
            manage("load_data", "EURUSD", "1h", "--source", "ib", "--mode", "full",
                   "--start", "2023-01-01", "--end", "2023-12-31",
                   KTRDR_IB_CLIENT_ID="31", **env),
            manage("load_data", "EURUSD", "4h", "--source", "ib", "--mode", "full",
                   "--start", "2020-01-01", "--end", "2024-01-01",
                   KTRDR_IB_CLIENT_ID="41", **env),
        ]  # fmt: skip
        outputs = [proc.communicate(timeout=240) for proc in loads]
        for proc, (out, err) in zip(loads, outputs, strict=True):
            assert proc.returncode == 0, out + err
            assert "completed" in out
        counts = json.loads(stats.read_text())
        assert counts["historical_requests"] >= 26
        assert counts["pacing_violations"] == 0, counts
        ops = list(Operation.objects.filter(operation_type="data_load"))
        assert len(ops) == 2
        for op in ops:
            assert op.status == "completed"
            assert op.result_summary["segments_retried"] == []
            assert op.result_summary["pacing_wait_seconds"] > 0
        if not os.environ.get("REDIS_URL"):
            # Without Redis the shared budget is a file under the data home (with it, a key).
            assert (home / "ib-pacing" / f"127.0.0.1_{port}.json").exists()
    finally:
        sim.kill()
        sim.wait(timeout=10)
