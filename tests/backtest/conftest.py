"""Fixtures for the backtest tests: one real small model trained on real EURUSD bars (once per
session), those bars in a temporary market-data store, and the model registered in the test's
database."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pandas as pd
import pytest

from marketdata.store import write_bars
from tests.training.conftest import SMALL_STRATEGY, eurusd, make_loader  # noqa: F401
from training.executor import TrainingExecutor
from training.services import trained_model_register
from training.strategy import validate_strategy

# The model trains on the strategy's history (2017-01-01 to 2017-07-01); the store holds more.
STORED_START, STORED_END = "2017-01-01", "2018-01-01"


@pytest.fixture(scope="session")
def trained_artifact(eurusd, tmp_path_factory) -> tuple[Path, dict]:  # noqa: F811
    """A real training run of the small strategy: its model file and its result."""
    folder = tmp_path_factory.mktemp("trained")
    executor = TrainingExecutor(
        config=validate_strategy(copy.deepcopy(SMALL_STRATEGY)),
        models_dir=folder,
        load_bars=make_loader(eurusd),
        run_id="run_backtest_fixture",
    )
    result = executor.run()
    return Path(result["model"]["artifact_path"]), result


@pytest.fixture
def data_dir(settings, tmp_path) -> Path:
    path = tmp_path / "data"
    settings.KTRDR = {**settings.KTRDR, "DATA_DIR": path, "OPERATIONS_CACHE_TTL": 0.0}
    return path


@pytest.fixture
def stored_bars(data_dir, eurusd) -> pd.DataFrame:  # noqa: F811
    frame = eurusd[(eurusd.index >= STORED_START) & (eurusd.index < STORED_END)]
    write_bars("EURUSD", "1h", frame, source="csv")
    return frame


@pytest.fixture
def models_dir(settings, tmp_path) -> Path:
    path = tmp_path / "models"
    settings.KTRDR = {**settings.KTRDR, "MODELS_DIR": path}
    return path


@pytest.fixture
def model(trained_artifact, models_dir, stored_bars):
    """The trained model registered as `test_small 1h v1` (file under MODELS_DIR)."""
    source, result = trained_artifact
    dest = models_dir / "test_small" / "1h" / source.name
    dest.parent.mkdir(parents=True)
    shutil.copy2(source, dest)
    return trained_model_register(artifact_path=dest, result=result)
