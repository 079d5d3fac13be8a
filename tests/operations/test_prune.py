"""`manage.py ops prune`: finished operations older than an age go, with their metrics, logs and
the files they own; running work, referenced models and younger operations stay
(docs/logs-and-retention.md). Run through call_command against real rows and files."""

from __future__ import annotations

import io
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from hostagents.artifacts import artifact_record, artifacts_dir
from hostagents.models import AgentStart, Artifact
from operations import services
from operations.bridge import ProgressBridge
from operations.models import Executor, Operation, OperationLog, OperationMetric
from operations.oplog import log_event
from operations.retention import parse_age
from training.models import TrainedModel

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stores(settings, tmp_path):
    settings.DATA_ROOT = tmp_path / "home"
    settings.KTRDR = {**settings.KTRDR, "MODELS_DIR": tmp_path / "models"}
    return tmp_path


def _finished(days: float, *, status: str = "completed", operation_type: str = "countdown"):
    op = services.operation_create(operation_type=operation_type, executor=Executor.AGENT)
    services.operation_start(operation_id=op.operation_id)
    bridge = ProgressBridge()
    bridge.append_metric("step", {"step": 1})
    pull = services.pull_from_bridge(bridge)
    log_event(logging.getLogger("operations.test"), logging.INFO, op.operation_id, "note", "hi")
    if status == "completed":
        services.operation_complete(operation_id=op.operation_id, result_summary={}, pull=pull)
    else:
        services.operation_fail(operation_id=op.operation_id, error_message="boom", pull=pull)
    ended = timezone.now() - timedelta(days=days)
    Operation.objects.filter(pk=op.pk).update(created_at=ended, completed_at=ended)
    return Operation.objects.get(pk=op.pk)


def _model(op: Operation, models: Path, *, strategy: str, version: int, keep: bool = False):
    path = models / strategy / "1h" / f"{op.operation_id}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"model" * 100)
    TrainedModel.objects.create(
        strategy_name=strategy,
        config_hash="c" * 64,
        timeframe="1h",
        timeframes=["1h"],
        symbols=["EURUSD"],
        version=version,
        artifact_path=f"{strategy}/1h/{op.operation_id}.pt",
        size_bytes=500,
        sha256="0" * 64,
        operation_id=op.operation_id,
        keep=keep,
    )
    return path


def _artifact(op: Operation) -> Path:
    folder = artifacts_dir(op.operation_id)
    folder.mkdir(parents=True)
    path = folder / "bars.parquet"
    path.write_bytes(b"x" * 1000)
    artifact_record(operation_id=op.operation_id, name=path.name, path=path, size=1000, sha256="1")
    AgentStart.objects.create(
        idempotency_key=f"key-{op.operation_id}", operation_id=op.operation_id, operation_type="t"
    )
    return path


def _prune(*args: str) -> str:
    out = io.StringIO()
    call_command("ops", "prune", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_prune_deletes_old_finished_work_with_its_files_and_keeps_what_it_must(stores):
    models = stores / "models"
    plain = _finished(40)
    failed = _finished(45, status="failed", operation_type="data_load")
    bars = _artifact(failed)
    superseded = _finished(50, operation_type="training")
    old_model = _model(superseded, models, strategy="rsi", version=1)
    latest = _finished(41, operation_type="training")
    latest_model = _model(latest, models, strategy="rsi", version=2)
    marked = _finished(60, operation_type="training")
    marked_model = _model(marked, models, strategy="trend", version=1, keep=True)
    newer_trend = _finished(1, operation_type="training")
    _model(newer_trend, models, strategy="trend", version=2)
    young = _finished(2)
    running = services.operation_create(operation_type="countdown", executor=Executor.AGENT)
    services.operation_start(operation_id=running.operation_id)
    Operation.objects.filter(pk=running.pk).update(created_at=timezone.now() - timedelta(days=90))
    doomed = [plain, failed, superseded]

    dry = _prune("--older-than", "30d", "--dry-run")
    for op in doomed:
        assert f"would delete {op.operation_id}" in dry
    assert "1 metric records, 4 log lines" in dry
    assert f"kept         {latest.operation_id}: model rsi 1h v2" in dry
    assert "is the latest version of rsi 1h" in dry
    assert f"kept         {marked.operation_id}: model trend 1h v1" in dry
    assert "is marked keep" in dry
    assert f"kept         {running.operation_id}: running (only finished operations" in dry
    assert young.operation_id not in dry
    assert "3 would delete; 3 kept; 2 ended more recently (not considered)" in dry
    # A dry run deletes nothing.
    assert Operation.objects.count() == 8
    assert bars.is_file()
    assert old_model.is_file()

    out = _prune("--older-than", "30d")
    assert "3 deleted (3 files and folders, 1500 bytes); 3 kept; 2 ended more recently" in out
    left = set(Operation.objects.values_list("operation_id", flat=True))
    assert left == {o.operation_id for o in (latest, marked, newer_trend, young, running)}
    pks = [op.pk for op in doomed]
    assert not OperationMetric.objects.filter(operation_id__in=pks).exists()
    assert not OperationLog.objects.filter(operation_id__in=pks).exists()
    assert not Artifact.objects.filter(operation_id=failed.operation_id).exists()
    assert not AgentStart.objects.filter(operation_id=failed.operation_id).exists()
    assert not TrainedModel.objects.filter(operation_id=superseded.operation_id).exists()
    assert not bars.exists()
    assert not bars.parent.exists()
    assert not old_model.exists()
    assert latest_model.is_file()
    assert marked_model.is_file()
    # Asking again finds nothing more to do.
    assert "0 deleted" in _prune("--older-than", "30d")


def test_prune_filters_by_status_and_never_by_an_active_one(stores):
    done = _finished(40)
    failed = _finished(40, status="failed")
    out = _prune("--older-than", "30d", "--status", "failed")
    assert f"deleted      {failed.operation_id}" in out
    assert Operation.objects.filter(pk=done.pk).exists()
    with pytest.raises(CommandError, match="never running, pending"):
        _prune("--status", "running,pending")


def test_the_default_age_is_the_setting(stores, settings):
    old = _finished(3)
    assert old.operation_id not in _prune()  # 30d by default
    settings.KTRDR = {**settings.KTRDR, "PRUNE_OLDER_THAN": "48h"}
    assert f"deleted      {old.operation_id}" in _prune()
    settings.KTRDR = {**settings.KTRDR, "PRUNE_OLDER_THAN": "soon"}
    with pytest.raises(CommandError, match="KTRDR_PRUNE_OLDER_THAN must be a whole number"):
        _prune()


@pytest.mark.parametrize("bad", ["30", "30x", "-5d", "0d", "", "1.5d", "d", "99999999d"])
def test_a_bad_age_is_refused_naming_what_is_accepted(stores, bad):
    _finished(40)
    with pytest.raises(CommandError, match="--older-than must be") as refused:
        _prune(f"--older-than={bad}")
    assert "d (days), h (hours) or m (minutes)" in str(refused.value) or "36500d" in str(
        refused.value
    )
    assert Operation.objects.count() == 1


def test_ages_have_units():
    assert parse_age("30d") == timedelta(days=30)
    assert parse_age(" 12h ") == timedelta(hours=12)
    assert parse_age("90m") == timedelta(minutes=90)
