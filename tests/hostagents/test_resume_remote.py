"""A training on an agent survives the agent: SIGKILLed mid-run and restarted, the agent reports
it interrupted; a resume fetches the checkpoint it left (verified), sends it back with the work
as a content-addressed input, and the run ends — training only the epochs after the checkpoint —
with the weights of an uninterrupted run of the same seed."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest
import yaml

from hostagents.models import Agent
from operations.models import Operation, OperationMetric
from tests.hostagents.conftest import wait_for
from tests.hostagents.test_remote import follow, get_op, register
from tests.hostagents.test_training_remote import TINY, stored_bars  # noqa: F401 (a fixture)
from training.checkpoint import RECORD_NAME

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EPOCHS = 300
CHECKPOINT_ENV = {"KTRDR_CHECKPOINT_EVERY_EPOCHS": "2", "KTRDR_CHECKPOINT_EVERY_SECONDS": "0"}


@pytest.fixture
def resumable(request, backend_settings) -> Path:
    """A strategy of many short epochs on the backend, and its checkpoints folder."""
    home = request.getfixturevalue("stored_bars")
    raw = copy.deepcopy(TINY)
    raw["name"] = "agent_resume"
    raw["training_data"]["history"] = {"start": "2017-01-01", "end": "2017-03-01"}
    raw["model"]["training"]["epochs"] = EPOCHS
    raw["model"]["training"]["batch_size"] = 64
    strategies = home / "strategies"
    strategies.mkdir()
    (strategies / "agent_resume.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    checkpoints = home / "checkpoints"
    backend_settings.KTRDR = {
        **backend_settings.KTRDR,
        "STRATEGIES_DIR": strategies,
        "CHECKPOINTS_DIR": checkpoints,
    }
    return checkpoints


def test_a_training_on_a_killed_agent_resumes_there_and_ends_bit_identical(
    resumable, api, agent_factory
):
    worker = agent_factory("ckpt", roles="training", env=CHECKPOINT_ENV)
    register(worker, "c1")
    response = api.post(
        "/api/v1/training/runs/",
        {"strategy": "agent_resume", "execution_mode": "agent", "agent": "c1", "seed": 7},
        format="json",
    )
    assert response.status_code == 202, response.content
    old_id = response.json()["operation_id"]
    remote_id = wait_for(
        lambda: Operation.objects.get(operation_id=old_id).remote_operation_id, timeout=60
    )
    on_agent = worker.home / "artifacts" / remote_id / "resume" / RECORD_NAME
    wait_for(on_agent.exists, timeout=120)

    worker.kill()  # SIGKILL mid-run
    worker.start()  # same home: the run is gone, its checkpoint is still on the disk
    failed = wait_for(
        lambda: (body := get_op(api, old_id))["status"] == "failed" and body, timeout=60
    )
    assert "interrupted" in failed["error_message"]

    response = api.post(f"/api/v1/operations/{old_id}/resume/")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["location"]["executor"] == "agent"
    assert body["metadata"]["resume_of"] == old_id
    # Fetched, verified, kept on the backend beside local runs' checkpoints.
    assert (resumable / old_id / RECORD_NAME).is_file()
    final, _ = follow(api, body["operation_id"], timeout=180)
    assert final["status"] == "completed", final
    new = Operation.objects.get(operation_id=body["operation_id"])
    assert new.resumed_from.operation_id == old_id
    epoch = new.metadata["resume"]["epoch"]
    assert epoch >= 2
    assert new.result_summary["training"]["epochs_trained"] == EPOCHS - epoch
    # It travelled as an input the agent was sent.
    assert new.metadata["inputs_sent_bytes"] >= new.metadata["resume"]["size"]
    records = OperationMetric.objects.filter(operation=new).order_by("seq")
    assert [(m.seq, m.payload["epoch"]) for m in records] == [(i, i + 1) for i in range(EPOCHS)]
    # A completed run leaves no checkpoint on the agent.
    assert not (worker.home / "artifacts" / new.remote_operation_id / "resume").exists()

    again = api.post(f"/api/v1/operations/{old_id}/rerun/").json()
    uninterrupted, _ = follow(api, again["operation_id"], timeout=180)
    assert uninterrupted["status"] == "completed", uninterrupted
    assert (
        final["result_summary"]["model"]["weights_sha256"]
        == uninterrupted["result_summary"]["model"]["weights_sha256"]
    )


def test_resume_of_a_run_its_agent_lost_without_its_files_is_a_conflict(
    resumable, api, agent_factory, tmp_path
):
    worker = agent_factory("amnesiac", roles="training", env=CHECKPOINT_ENV)
    register(worker, "c2")
    response = api.post(
        "/api/v1/training/runs/",
        {"strategy": "agent_resume", "execution_mode": "agent", "agent": "c2", "seed": 7},
        format="json",
    )
    old_id = response.json()["operation_id"]
    wait_for(lambda: Operation.objects.get(operation_id=old_id).remote_operation_id, timeout=60)
    worker.kill()
    worker.start(home=tmp_path / "fresh-home")  # restarted empty: the run and its files gone
    wait_for(lambda: get_op(api, old_id)["status"] == "failed", timeout=60)
    time.sleep(0.3)
    response = api.post(f"/api/v1/operations/{old_id}/resume/")
    assert response.status_code == 409, response.content
    assert "left no checkpoint" in response.json()["error"]["message"]
    assert Agent.objects.filter(name="c2").exists()
