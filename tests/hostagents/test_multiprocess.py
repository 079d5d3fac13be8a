"""Several backend processes sharing Redis: at most one agent request per operation per TTL window.

The refresh time and the single-flight lock live in the shared cache (docs/architecture.md §4),
so three backend processes reading the same remote operation at the same moment cause one pull.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from operations import cache as op_cache
from operations.models import Operation
from tests.hostagents.conftest import SERVED_REFRESH, TOKEN
from tests.hostagents.test_remote import register, start_remote_countdown
from tests.processes import ROOT, process_env

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.environ.get("REDIS_URL"),
        reason="several processes share a refresh lock only through Redis (REDIS_URL)",
    ),
]


READER = """
import os, sys, time
import django
django.setup()
from django.conf import settings
settings.KTRDR = {**settings.KTRDR, "OPERATIONS_CACHE_TTL": 30.0}
from operations import selectors
op_id, start_at = sys.argv[1], float(sys.argv[2])
time.sleep(max(0.0, start_at - time.time()))
for _ in range(3):
    op = selectors.operation_get(operation_id=op_id)
print(op.status, op.refreshed_at is not None)
"""


def test_three_backend_processes_cause_one_agent_request_per_window(backend_settings, api, agent):
    register(agent)
    started = start_remote_countdown(api, steps=100, step_seconds=0.1)
    op_id = started["operation_id"]
    # Nobody has pulled recently: the next reader must refresh.
    Operation.objects.filter(operation_id=op_id).update(refreshed_at=None)
    op_cache.invalidate(op_id)
    before = agent.served().get(SERVED_REFRESH, 0)

    env = process_env(KTRDR_AGENT_TOKEN=TOKEN)
    start_at = time.time() + 3.0  # every process is imported and waiting by then
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", READER, op_id, str(start_at)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert all(out.split() == ["running", "True"] for out, _ in outputs), outputs
    after = agent.served().get(SERVED_REFRESH, 0)
    assert after - before == 1
    api.post(f"/api/v1/operations/{op_id}/cancel/", {"reason": "done"}, format="json")
