"""Disk trouble where models go: said at once or at the save, naming the path and the cause.

The models folder is a real small file system (a 1 MiB tmpfs mounted for the test), full or
read-only as a real disk would be; where this machine allows no mounting the tests say so.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from operations.local import local_runs
from operations.models import Operation, OperationMetric
from tests.conftest import fill_up
from training import services
from training.models import TrainedModel

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def small_disk(tmpfs, settings) -> Path:
    settings.KTRDR = {**settings.KTRDR, "MODELS_DIR": tmpfs / "models"}
    return tmpfs


def run_to_end(**kwargs) -> Operation:
    op = services.training_start(strategy="test_small", **kwargs)
    assert local_runs.wait_idle(timeout=120)
    return Operation.objects.get(pk=op.pk)


def test_too_little_room_for_models_fails_the_run_before_any_epoch(
    strategies_dir, store_bars, small_disk
):
    op = run_to_end()

    assert op.status == "failed"
    assert str(small_disk / "models") in op.error_message
    assert "MB free" in op.error_message
    assert "KTRDR_TRAINING_MIN_FREE_MB" in op.error_message
    assert not OperationMetric.objects.filter(operation=op, kind="epoch").exists()


def test_a_disk_that_fills_up_fails_the_save_saying_so_and_leaves_nothing(
    strategies_dir, store_bars, small_disk, settings
):
    settings.KTRDR = {**settings.KTRDR, "TRAINING_MIN_FREE_MB": 0}
    fill_up(small_disk)

    op = run_to_end()

    assert op.status == "failed"
    assert "could not save the model to" in op.error_message
    assert str(small_disk / "models") in op.error_message
    assert "full" in op.error_message
    assert "enforce fail" not in op.error_message
    assert TrainedModel.objects.count() == 0
    leftovers = [p for p in (small_disk / "models").rglob("*") if p.is_file()]
    assert leftovers == []


def test_a_read_only_models_folder_fails_the_run_at_once(strategies_dir, store_bars, small_disk):
    (small_disk / "models").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)

    op = run_to_end()

    assert op.status == "failed"
    assert "the file system is read-only" in op.error_message
    assert str(small_disk / "models") in op.error_message


def test_model_files_follow_the_umask(strategies_dir, store_bars, models_dir):
    op = run_to_end()
    assert op.status == "completed", op.error_message
    model = TrainedModel.objects.get()
    mode = stat.S_IMODE((models_dir / model.artifact_path).stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
