"""An evaluation on an agent: the resolved strategy and the bars travel with the start, the same
run gives the same folds and aggregate as here."""

from __future__ import annotations

import time

import pytest

from evaluation import services
from hostagents import services as agent_services
from marketdata.store import write_bars
from operations.local import local_runs
from operations.models import Executor, Operation, OperationMetric
from tests.hostagents.conftest import AgentProcess
from tests.training.conftest import eurusd, strategies_dir  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BODY = {
    "strategy": "test_small",
    "start": "2017-01-01",
    "end": "2017-04-01",
    "folds": 3,
    "seeds": 2,
    "epochs": 2,
    "execution_mode": "local",
}


@pytest.fixture
def bars_here(backend_settings, tmp_path, eurusd, strategies_dir):  # noqa: F811
    backend_settings.KTRDR = {**backend_settings.KTRDR, "DATA_DIR": tmp_path / "data"}
    frame = eurusd[(eurusd.index >= "2017-01-01") & (eurusd.index < "2017-07-01")]
    write_bars("EURUSD", "1h", frame, source="csv")
    return frame


def wait_done(op_id: str, timeout: float = 120.0) -> Operation:
    from operations.selectors import operation_get

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        op = operation_get(operation_id=op_id, force_refresh=True)
        if op.is_terminal:
            return op
        time.sleep(0.2)
    raise AssertionError(f"{op_id} did not end")


def test_an_evaluation_on_an_agent_gives_the_same_folds_as_here(bars_here, agent: AgentProcess):
    agent_services.agent_add(name="ev1", base_url=agent.url)
    here = services.evaluation_start(body=BODY)
    assert local_runs.wait_idle(timeout=120)
    there = services.evaluation_start(body={**BODY, "execution_mode": "agent", "agent": "ev1"})
    assert there.executor == Executor.AGENT
    assert there.metadata["inputs_sent_bytes"] > 0
    there = wait_done(there.operation_id)
    here = Operation.objects.get(pk=here.pk)
    assert there.status == here.status == "completed", there.error_message
    for key in ("plan", "fold_results", "aggregate", "units_done", "purge_bars", "seeds"):
        assert there.result_summary[key] == here.result_summary[key], key
    remote = OperationMetric.objects.filter(operation=there, kind="fold").count()
    assert remote == here.result_summary["units_total"] == 6
    # In auto, a training agent is asked first (as for training).
    auto = services.evaluation_start(body={**BODY, "execution_mode": "auto"})
    assert auto.executor == Executor.AGENT
    assert wait_done(auto.operation_id).status == "completed"
