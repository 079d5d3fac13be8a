"""Training throughput in the metrics: a real run counts its samples and epochs, and its
samples/s is in the gauge while it runs and leaves it when it ends (recorded once per epoch,
never per batch)."""

from __future__ import annotations

import copy

import pytest

from operations.metrics import Scrape
from tests.training.conftest import SMALL_STRATEGY, make_loader
from training.bridge import TrainingProgressBridge
from training.executor import TrainingExecutor
from training.strategy import validate_strategy

pytestmark = pytest.mark.django_db


def figure(name: str) -> float:
    return sum(v for (n, _labels), v in Scrape().values().items() if n == name)


class WatchingBridge(TrainingProgressBridge):
    """The real bridge, noting the gauge as each epoch is reported."""

    def __init__(self) -> None:
        super().__init__()
        self.rates: list[float] = []

    def on_epoch(self, *args, **kwargs) -> None:
        self.rates.append(figure("ktrdr_training_samples_per_second"))
        super().on_epoch(*args, **kwargs)


def test_a_run_counts_its_samples_and_its_rate_lasts_while_it_runs(eurusd, tmp_path):
    samples_before = figure("ktrdr_training_samples_total")
    epochs_before = figure("ktrdr_training_epochs_total")
    rate_before = figure("ktrdr_training_samples_per_second")
    bridge = WatchingBridge()
    executor = TrainingExecutor(
        config=validate_strategy(copy.deepcopy(SMALL_STRATEGY)),
        models_dir=tmp_path,
        load_bars=make_loader(eurusd),
        run_id="run_metrics",
        bridge=bridge,
        save=False,
    )
    result = executor.run()
    epochs = result["training"]["epochs_run"]
    train_samples = result["data"]["samples"]["train"]
    assert figure("ktrdr_training_epochs_total") - epochs_before == epochs
    assert figure("ktrdr_training_samples_total") - samples_before == train_samples * epochs
    assert len(bridge.rates) == epochs
    assert all(rate > rate_before for rate in bridge.rates)
    assert figure("ktrdr_training_samples_per_second") == pytest.approx(rate_before, abs=1e-6)
