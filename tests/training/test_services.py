"""Training services: start metadata, model registration and versioning, the train command."""

from __future__ import annotations

import io
import shutil

import pytest
from django.core.management import CommandError, call_command

from operations.exceptions import InvalidInput
from operations.local import local_runs
from operations.models import Operation
from training import services
from training.models import TrainedModel

pytestmark = pytest.mark.django_db(transaction=True)


def test_start_records_what_where_and_why_in_the_metadata(strategies_dir, models_dir, store_bars):
    op = services.training_start(strategy="test_small", symbols="eurusd", execution_mode="agent")
    meta = op.metadata
    assert meta["symbols"] == ["EURUSD"]
    assert meta["execution_mode"] == "agent"
    assert meta["require_gpu"] is False
    assert meta["placement"]["place"] == "local"
    assert "running locally" in meta["placement"]["reason"]
    assert meta["start"] == "2017-01-01T00:00:00+00:00"
    assert op.strategy_name == "test_small"
    assert op.input_series == ["EURUSD:1h"]
    assert local_runs.wait_idle(timeout=60)
    op = Operation.objects.get(pk=op.pk)
    assert op.produced_model == "test_small 1h v1"


def test_naming_an_unregistered_agent_is_refused(strategies_dir):
    with pytest.raises(InvalidInput) as info:
        services.training_start(strategy="test_small", execution_mode="agent", agent="gpu1")
    assert info.value.field == "agent"


def test_registering_counts_versions_per_strategy_and_timeframe(
    strategies_dir, models_dir, store_bars
):
    services.training_start(strategy="test_small")
    assert local_runs.wait_idle(timeout=60)
    first = TrainedModel.objects.get()
    copy = models_dir / "copy.pt"
    shutil.copy(models_dir / first.artifact_path, copy)
    second = services.trained_model_register(artifact_path=copy, sha256=first.sha256)
    assert (first.version, second.version) == (1, 2)
    assert second.artifact_path == "copy.pt"
    assert second.sha256 == first.sha256


def test_registering_a_file_with_the_wrong_sha256_is_refused(models_dir, tmp_path):
    path = tmp_path / "x.pt"
    path.write_bytes(b"not a model")
    with pytest.raises(InvalidInput) as info:
        services.trained_model_register(artifact_path=path, sha256="0" * 64)
    assert info.value.field == "sha256"
    with pytest.raises(InvalidInput, match="not a loadable model"):
        services.trained_model_register(artifact_path=path)
    assert TrainedModel.objects.count() == 0


def test_the_train_command_follows_the_run_to_its_end(strategies_dir, models_dir, store_bars):
    out = io.StringIO()
    call_command("train", "test_small", "--symbols", "EURUSD", "--timeframes", "1h", stdout=out)
    text = out.getvalue()
    assert "completed" in text
    assert "test accuracy" in text
    assert TrainedModel.objects.count() == 1


def test_the_train_command_reports_bad_input_without_a_traceback(strategies_dir):
    with pytest.raises(CommandError, match="timeframes: unknown timeframe"):
        call_command("train", "test_small", "--timeframes", "7h", stdout=io.StringIO())


def test_the_train_command_fails_with_the_run_s_error(strategies_dir, models_dir, store_bars):
    with pytest.raises(CommandError, match="loading bars GBPUSD 1h"):
        call_command("train", "test_small", "--symbols", "GBPUSD", stdout=io.StringIO())


def test_one_operation_registers_one_model_even_when_two_processes_race(
    strategies_dir, models_dir, store_bars
):
    """Two backends discovering the same remote completion register its model once."""
    import threading

    from django.db import connections

    op = services.training_start(strategy="test_small")
    assert local_runs.wait_idle(timeout=60)
    first = TrainedModel.objects.get()
    copy = models_dir / "fetched.pt"
    shutil.copy(models_dir / first.artifact_path, copy)
    TrainedModel.objects.all().delete()  # as if the run had finished on an agent, unregistered

    got: list[TrainedModel] = []
    start = threading.Barrier(3)

    def register() -> None:
        try:
            start.wait(10)
            got.append(
                services.trained_model_register(
                    artifact_path=copy, sha256=first.sha256, operation_id=op.operation_id
                )
            )
        finally:
            connections.close_all()

    racers = [threading.Thread(target=register) for _ in range(3)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(60)

    assert TrainedModel.objects.filter(operation_id=op.operation_id).count() == 1
    assert len(got) == 3
    assert len({m.pk for m in got}) == 1
    other = models_dir / "other.pt"
    other.write_bytes(copy.read_bytes() + b"\0")
    with pytest.raises(InvalidInput, match="already produced model"):
        services.trained_model_register(artifact_path=other, operation_id=op.operation_id)
