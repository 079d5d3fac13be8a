"""Training reads its bars from the market-data store when nothing is injected."""

from __future__ import annotations

import pytest

from operations.local import local_runs
from operations.models import Operation
from training import services
from training.models import TrainedModel

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def data_dir(settings, tmp_path):
    path = tmp_path / "data"
    settings.KTRDR = {**settings.KTRDR, "DATA_DIR": path}
    return path


def test_a_run_trains_from_bars_written_to_the_store(eurusd, data_dir, strategies_dir, models_dir):
    from marketdata.store import write_bars

    write_bars("EURUSD", "1h", eurusd.loc["2016-12-01":"2017-07-31"], source="csv")
    op = services.training_start(strategy="test_small", start="2017-01-01", end="2017-07-01")
    assert local_runs.wait_idle(timeout=60)
    op = Operation.objects.get(pk=op.pk)
    assert op.status == "completed", op.error_message
    expected = len(eurusd[(eurusd.index >= "2017-01-01") & (eurusd.index < "2017-07-01")])
    assert op.result_summary["data"]["bars"] == {"EURUSD": {"1h": expected}}
    assert TrainedModel.objects.get().operation_id == op.operation_id


def test_a_series_missing_from_the_store_fails_the_run_by_name(
    data_dir, strategies_dir, models_dir
):
    op = services.training_start(strategy="test_small")
    assert local_runs.wait_idle(timeout=60)
    op = Operation.objects.get(pk=op.pk)
    assert op.status == "failed"
    assert op.error_message.startswith("TrainingDataError: loading bars EURUSD 1h:")
