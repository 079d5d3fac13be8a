"""Resuming a cancelled or failed training from its last checkpoint: a new, linked operation that
trains only the epochs after it and ends with the weights of an uninterrupted run; from the API,
the page and `ops resume`; refused (409/400) when there is nothing sound to resume from."""

from __future__ import annotations

import copy
import json
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from operations.exceptions import Conflict, InvalidInput
from operations.execution import operation_cancel, operation_rerun, operation_resume
from operations.local import local_runs
from operations.models import Operation, OperationMetric
from operations.retention import operations_prune
from tests.training.conftest import SMALL_STRATEGY
from training.checkpoint import RECORD_NAME
from training.services import training_start

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EPOCHS = 300
WAIT = 120.0


@pytest.fixture
def checkpoints_dir(settings, tmp_path) -> Path:
    path = tmp_path / "checkpoints"
    settings.KTRDR = {
        **settings.KTRDR,
        "CHECKPOINTS_DIR": path,
        "CHECKPOINT_EVERY_EPOCHS": 2,
        "CHECKPOINT_EVERY_SECONDS": 0,
    }
    return path


@pytest.fixture
def resumable_strategy(strategies_dir) -> str:
    """Many short epochs: long enough to be cancelled mid-run, short enough for a test."""
    raw = copy.deepcopy(SMALL_STRATEGY)
    raw["name"] = "test_resume"
    raw["training_data"]["history"] = {"start": "2017-01-01", "end": "2017-03-01"}
    raw["model"]["training"]["epochs"] = EPOCHS
    raw["model"]["training"]["batch_size"] = 64
    (strategies_dir / "test_resume.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return "test_resume"


def _when(predicate, what: str):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"not seen in {WAIT} s: {what}")


def cancelled_with_checkpoint(checkpoints_dir: Path, user=None) -> Operation:
    op = training_start(strategy="test_resume", execution_mode="local", user=user, seed=7)
    record = checkpoints_dir / op.operation_id / RECORD_NAME
    _when(record.exists, f"{record}")
    operation_cancel(operation_id=op.operation_id, reason="test", user=None)
    assert local_runs.wait_idle(timeout=WAIT)
    op.refresh_from_db()
    assert op.status == "cancelled", (op.status, op.error_message)
    return op


def _finished(operation_id: str) -> Operation:
    assert local_runs.wait_idle(timeout=WAIT)
    op = Operation.objects.get(operation_id=operation_id)
    assert op.status == "completed", op.error_message
    return op


def _epochs_of(op: Operation) -> list[tuple[int, int]]:
    return list(
        OperationMetric.objects.filter(operation=op, kind="epoch")
        .order_by("seq")
        .values_list("seq", "payload__epoch")
    )


def test_resume_of_a_cancelled_training_trains_only_the_rest_and_ends_bit_identical(
    api, user, checkpoints_dir, resumable_strategy, models_dir, store_bars
):
    old = cancelled_with_checkpoint(checkpoints_dir, user)
    folder = checkpoints_dir / old.operation_id
    record = json.loads((folder / RECORD_NAME).read_text())
    # A cancel keeps the checkpoint, of the last epoch the run finished.
    assert (folder / record["file"]).is_file()
    assert record["epoch"] == old.result_summary["epochs_completed"]

    resp = api.post(f"/api/v1/operations/{old.operation_id}/resume/")
    assert resp.status_code == 202, resp.content
    new = _finished(resp.json()["operation_id"])
    assert new.resumed_from == old
    assert new.metadata["resume_of"] == old.operation_id
    assert new.metadata["resume"]["epoch"] == record["epoch"]
    training = new.result_summary["training"]
    assert training["resumed_from_epoch"] == record["epoch"]
    assert training["epochs_trained"] == EPOCHS - record["epoch"]
    # Whole curves: every epoch once, seq continuing with no gap and no duplicate.
    assert _epochs_of(new) == [(i, i + 1) for i in range(EPOCHS)]
    # A completed run removes its checkpoints; the one it resumed from stays with its run.
    assert not (checkpoints_dir / new.operation_id).exists()
    assert (folder / record["file"]).is_file()

    # The same seed uninterrupted (a re-run of the first one): the same weights, bit for bit.
    again = _finished(operation_rerun(operation_id=old.operation_id, user=user).operation_id)
    assert again.result_summary["training"]["epochs_trained"] == EPOCHS
    assert (
        new.result_summary["model"]["weights_sha256"]
        == again.result_summary["model"]["weights_sha256"]
    )
    assert new.result_summary["metrics"] == again.result_summary["metrics"]


def test_resume_is_refused_for_a_running_or_completed_training(
    api, user, checkpoints_dir, resumable_strategy, models_dir, store_bars
):
    op = training_start(strategy="test_resume", execution_mode="local", user=user)
    _when(lambda: Operation.objects.get(pk=op.pk).status == "running", "running")
    resp = api.post(f"/api/v1/operations/{op.operation_id}/resume/")
    assert resp.status_code == 409
    assert resp.json()["error"]["code"] == "conflict"
    assert "only a failed or cancelled operation can be resumed" in resp.json()["error"]["message"]
    operation_cancel(operation_id=op.operation_id, user=None)
    assert local_runs.wait_idle(timeout=WAIT)

    done = training_start(strategy="test_small", execution_mode="local", user=user)
    _finished(done.operation_id)
    resp = api.post(f"/api/v1/operations/{done.operation_id}/resume/")
    assert resp.status_code == 409
    assert "is completed" in resp.json()["error"]["message"]


def test_resume_without_a_checkpoint_is_a_conflict_saying_so(
    api, user, checkpoints_dir, resumable_strategy, models_dir, store_bars
):
    op = training_start(strategy="test_resume", execution_mode="local", user=user)
    _when(lambda: Operation.objects.get(pk=op.pk).status == "running", "running")
    operation_cancel(operation_id=op.operation_id, user=None)
    assert local_runs.wait_idle(timeout=WAIT)
    op.refresh_from_db()
    if (checkpoints_dir / op.operation_id).exists():
        # The run got past its first checkpoint before the cancel reached it: take it away.
        for path in (checkpoints_dir / op.operation_id).iterdir():
            path.unlink()
    resp = api.post(f"/api/v1/operations/{op.operation_id}/resume/")
    assert resp.status_code == 409
    assert "it left no checkpoint" in resp.json()["error"]["message"]


def test_a_corrupted_checkpoint_is_refused_by_api_command_and_page(
    api, logged_in, user, checkpoints_dir, resumable_strategy, models_dir, store_bars
):
    old = cancelled_with_checkpoint(checkpoints_dir, user)
    folder = checkpoints_dir / old.operation_id
    name = json.loads((folder / RECORD_NAME).read_text())["file"]
    data = bytearray((folder / name).read_bytes())
    data[100] ^= 0xFF
    (folder / name).write_bytes(bytes(data))

    resp = api.post(f"/api/v1/operations/{old.operation_id}/resume/")
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert f"checkpoint corrupted: sha256 mismatch for {name}" in error["message"]
    assert list(error["details"]) == ["checkpoint"]

    with pytest.raises(CommandError, match=f"sha256 mismatch for {name}"):
        call_command("ops", "resume", old.operation_id, stdout=StringIO())

    page = logged_in.post(f"/operations/{old.operation_id}/resume/", follow=True)
    text = page.content.decode()
    assert "checkpoint corrupted: sha256 mismatch" in text
    assert not Operation.objects.filter(resumed_from=old).exists()


def test_the_page_offers_resume_only_for_a_resumable_operation_and_it_starts_one(
    logged_in, user, checkpoints_dir, resumable_strategy, models_dir, store_bars
):
    old = cancelled_with_checkpoint(checkpoints_dir, user)
    page = logged_in.get(f"/operations/{old.operation_id}/").content.decode()
    assert f'action="/operations/{old.operation_id}/resume/"' in page
    assert "csrfmiddlewaretoken" in page
    # GET is not a resume.
    assert logged_in.get(f"/operations/{old.operation_id}/resume/").status_code == 405

    answer = logged_in.post(f"/operations/{old.operation_id}/resume/", follow=True)
    new = Operation.objects.get(resumed_from=old)
    assert answer.redirect_chain[-1][0] == f"/operations/{new.operation_id}/"
    assert f"Resumed as {new.operation_id}" in answer.content.decode()
    _finished(new.operation_id)
    new_page = logged_in.get(f"/operations/{new.operation_id}/").content.decode()
    assert "<dt>Resumes</dt>" in new_page
    assert old.operation_id in new_page
    # A completed run has no resume button.
    assert f'action="/operations/{new.operation_id}/resume/"' not in new_page
    old_page = logged_in.get(f"/operations/{old.operation_id}/").content.decode()
    assert "<dt>Resumed as</dt>" in old_page
    assert new.operation_id in old_page


def test_ops_resume_goes_on_with_a_cancelled_training(
    user, checkpoints_dir, resumable_strategy, models_dir, store_bars
):
    old = cancelled_with_checkpoint(checkpoints_dir, user)
    out = StringIO()
    call_command("ops", "resume", old.operation_id, stdout=out)
    text = out.getvalue()
    assert f"(resumes {old.operation_id})" in text
    new = Operation.objects.get(resumed_from=old)
    assert f"{new.operation_id} completed" in text
    assert new.created_by is None


def test_only_the_owner_or_staff_may_resume(
    django_user_model, user, checkpoints_dir, resumable_strategy, models_dir, store_bars
):
    old = cancelled_with_checkpoint(checkpoints_dir, user)
    other = django_user_model.objects.create_user(username="bob", password="s3cret-bob!")
    from operations.exceptions import NotAllowed

    with pytest.raises(NotAllowed):
        operation_resume(operation_id=old.operation_id, user=other)
    assert not Operation.objects.filter(resumed_from=old).exists()


def test_resume_here_from_a_detached_command_is_refused_and_nothing_starts(
    user, checkpoints_dir, resumable_strategy, models_dir, store_bars
):
    old = cancelled_with_checkpoint(checkpoints_dir, user)
    with pytest.raises(InvalidInput, match="would run inside this command"):
        operation_resume(operation_id=old.operation_id, detach=True)
    assert not Operation.objects.filter(resumed_from=old).exists()


def test_prune_removes_a_checkpoint_with_its_operation(
    user, checkpoints_dir, resumable_strategy, models_dir, store_bars
):
    old = cancelled_with_checkpoint(checkpoints_dir, user)
    folder = checkpoints_dir / old.operation_id
    assert folder.is_dir()
    Operation.objects.filter(pk=old.pk).update(completed_at="2000-01-01T00:00:00Z")
    report = operations_prune(older_than=timedelta(days=1))
    assert old.operation_id in {d.operation_id for d in report.deleted}
    assert not folder.exists()


def test_a_countdown_cannot_be_resumed(api):
    from operations.countdown import countdown_start

    op = countdown_start(steps=1, step_seconds=0)
    assert local_runs.wait_idle(timeout=WAIT)
    Operation.objects.filter(pk=op.pk).update(status="failed")
    with pytest.raises(Conflict, match="cannot be resumed"):
        operation_resume(operation_id=op.operation_id)


def test_a_resumed_run_cancelled_in_turn_resumes_again_to_the_same_weights(
    user, checkpoints_dir, resumable_strategy, models_dir, store_bars
):
    old = cancelled_with_checkpoint(checkpoints_dir, user)
    child = operation_resume(operation_id=old.operation_id, user=user)
    # Cancelled as soon as it runs: from its own checkpoint if it wrote one, else from the one it
    # started from.
    _when(lambda: Operation.objects.get(pk=child.pk).status == "running", "running")
    operation_cancel(operation_id=child.operation_id, user=None)
    assert local_runs.wait_idle(timeout=WAIT)
    child.refresh_from_db()
    assert child.status in {"cancelled", "completed"}
    if child.status == "completed":
        pytest.skip("the resumed run finished before the cancel reached it")
    grandchild = _finished(operation_resume(operation_id=child.operation_id).operation_id)
    assert grandchild.resumed_from == child
    assert _epochs_of(grandchild) == [(i, i + 1) for i in range(EPOCHS)]
    again = _finished(operation_rerun(operation_id=old.operation_id, user=user).operation_id)
    assert (
        grandchild.result_summary["model"]["weights_sha256"]
        == again.result_summary["model"]["weights_sha256"]
    )
