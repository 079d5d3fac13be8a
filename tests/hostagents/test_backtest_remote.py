"""A backtest on an agent: the model file and the bars travel with the start, the same run gives
the same figures and trades as here."""

from __future__ import annotations

import shutil
import time

import pytest

from backtest import services
from hostagents import services as agent_services
from marketdata.store import write_bars
from operations.local import local_runs
from operations.models import Executor, Operation, OperationMetric
from tests.backtest.conftest import STORED_END, STORED_START, trained_artifact  # noqa: F401
from tests.hostagents.conftest import AgentProcess
from tests.training.conftest import eurusd  # noqa: F401
from training.services import trained_model_register

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def model_here(backend_settings, tmp_path, eurusd, trained_artifact):  # noqa: F811
    backend_settings.KTRDR = {
        **backend_settings.KTRDR,
        "DATA_DIR": tmp_path / "data",
        "MODELS_DIR": tmp_path / "models",
    }
    frame = eurusd[(eurusd.index >= STORED_START) & (eurusd.index < STORED_END)]
    write_bars("EURUSD", "1h", frame, source="csv")
    source, result = trained_artifact
    dest = tmp_path / "models" / "test_small" / "1h" / source.name
    dest.parent.mkdir(parents=True)
    shutil.copy2(source, dest)
    return trained_model_register(artifact_path=dest, result=result)


def wait_done(op_id: str, timeout: float = 120.0) -> Operation:
    from operations.selectors import operation_get

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        op = operation_get(operation_id=op_id, force_refresh=True)
        if op.is_terminal:
            return op
        time.sleep(0.2)
    raise AssertionError(f"{op_id} did not end")


def test_a_backtest_on_an_agent_gives_the_same_result_as_here(model_here, agent: AgentProcess):
    agent_services.agent_add(name="bt1", base_url=agent.url)
    body = {"model_id": model_here.pk, "start": "2017-08-01", "end": "2017-10-01", "cost_bps": 1}
    here = services.backtest_start(body=body)
    assert local_runs.wait_idle(timeout=120)
    there = services.backtest_start(body={**body, "agent": "bt1"})
    assert there.executor == Executor.AGENT
    assert there.metadata["inputs_sent_bytes"] > 0
    there = wait_done(there.operation_id)
    here = Operation.objects.get(pk=here.pk)
    assert there.status == here.status == "completed", there.error_message
    for key in ("figures", "baselines", "trades", "curve", "in_sample", "warnings"):
        assert there.result_summary[key] == here.result_summary[key], key
    remote_trades = OperationMetric.objects.filter(operation=there, kind="trade").count()
    assert remote_trades == here.result_summary["trades_total"]


def test_a_cancelled_backtest_resumes_on_an_agent_with_its_engine_state_sent(
    model_here, agent: AgentProcess, tmp_path, backend_settings
):
    from backtest.kinds import BACKTEST
    from operations.execution import operation_launch, operation_resume
    from tests.backtest.test_resume import CHUNK, CancelAfter, records, strip

    backend_settings.KTRDR = {**backend_settings.KTRDR, "CHECKPOINTS_DIR": tmp_path / "ckpt"}
    agent_services.agent_add(name="bt2", base_url=agent.url)
    body = {"model_id": model_here.pk, "start": "2017-08-01", "end": "2017-12-01"}
    metadata = services.backtest_metadata(body={**body, "chunk_bars": CHUNK})
    # Cancelled here after three chunks; it was asked to run on bt2, where its resume goes.
    launch = BACKTEST.prepare(
        {**metadata, "placement": {"execution_mode": "agent", "agent": "bt2"}}, None
    )
    launch.bridge = bridge = CancelAfter(3)
    old = operation_launch(operation_type="backtest", launch=launch)
    bridge.operation_id = old.operation_id
    assert local_runs.wait_idle(timeout=120)
    old = Operation.objects.get(pk=old.pk)
    assert old.status == "cancelled"

    new = operation_resume(operation_id=old.operation_id)
    assert new.executor == Executor.AGENT
    assert new.metadata["inputs_sent_bytes"] > 0
    new = wait_done(new.operation_id)
    assert new.status == "completed", new.error_message
    assert new.result_summary["partial"] is False

    whole = services.backtest_start(body={**body, "chunk_bars": CHUNK})
    assert local_runs.wait_idle(timeout=120)
    whole = Operation.objects.get(pk=whole.pk)
    for key in ("figures", "baselines", "trades", "curve", "trades_total"):
        assert new.result_summary[key] == whole.result_summary[key], key
    assert strip(records(new, "chunk")) == strip(records(whole, "chunk"))
