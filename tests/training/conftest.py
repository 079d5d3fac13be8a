"""Fixtures for the training tests: real EURUSD bars from ../shared, small strategies, temp dirs."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest

from operations.exceptions import NotFound
from tests.shared_data import EURUSD_1H_CSV, require_shared
from training.strategy import validate_strategy

SHARED_CSV = EURUSD_1H_CSV

SMALL_STRATEGY = {
    "name": "test_small",
    "description": "small and fast, for tests",
    "training_data": {
        "symbols": ["EURUSD"],
        "timeframes": ["1h"],
        "history": {"start": "2017-01-01", "end": "2017-07-01"},
    },
    "indicators": {
        "rsi_14": {"type": "rsi", "period": 14},
        "macd": {"type": "macd"},
        "atr_14": {"type": "atr", "period": 14},
        "obv": {"type": "obv"},
    },
    "fuzzy_sets": {
        "rsi_zone": {
            "input": "rsi_14",
            "sets": {
                "low": {"type": "trapezoidal", "parameters": [0, 0, 30, 45]},
                "mid": {"type": "triangular", "parameters": [35, 50, 65]},
                "high": {"type": "gaussian", "parameters": [75, 10]},
            },
        }
    },
    "model_inputs": [
        "rsi_zone.low",
        "rsi_zone.mid",
        "rsi_zone.high",
        "macd.histogram",
        "atr_14",
        "obv",
    ],
    "labels": {"type": "zigzag", "threshold": 0.003},
    "split": {"train": 0.7, "validation": 0.15, "test": 0.15},
    "model": {
        "hidden_layers": [16, 8],
        "dropout": 0.1,
        "activation": "relu",
        "training": {
            "epochs": 6,
            "batch_size": 128,
            "learning_rate": 0.003,
            "early_stopping": None,
            "seed": 3,
        },
    },
}


@pytest.fixture(scope="session")
def eurusd() -> pd.DataFrame:
    """The real EURUSD 1h bars (zero volume everywhere), read straight from the shared CSV."""
    require_shared(SHARED_CSV)
    frame = pd.read_csv(SHARED_CSV)
    frame.index = pd.DatetimeIndex(
        pd.to_datetime(frame.pop("timestamp"), utc=True), name="timestamp"
    )
    return frame.astype(float)


def make_loader(frame: pd.DataFrame, timeframes: tuple[str, ...] = ("1h",)):
    def load(symbol: str, timeframe: str, start, end) -> pd.DataFrame:
        if symbol != "EURUSD" or timeframe not in timeframes:
            raise NotFound(f"no bars stored for {symbol} {timeframe}")
        out = frame
        if start is not None:
            out = out[out.index >= pd.Timestamp(start)]
        if end is not None:
            out = out[out.index < pd.Timestamp(end)]
        return out

    return load


@pytest.fixture
def csv_loader(eurusd):
    return make_loader(eurusd)


@pytest.fixture
def small_config() -> dict:
    return validate_strategy(copy.deepcopy(SMALL_STRATEGY))


def small_config_with(**changes) -> dict:
    raw = copy.deepcopy(SMALL_STRATEGY)
    for dotted, value in changes.items():
        node = raw
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return validate_strategy(raw)


@pytest.fixture
def models_dir(settings, tmp_path) -> Path:
    path = tmp_path / "models"
    settings.KTRDR = {**settings.KTRDR, "MODELS_DIR": path}
    return path


@pytest.fixture
def strategies_dir(settings, tmp_path) -> Path:
    """A strategies directory with `test_small` (6 epochs) and `test_slow` (many epochs)."""
    import yaml

    path = tmp_path / "strategies"
    path.mkdir()
    (path / "test_small.yaml").write_text(yaml.safe_dump(SMALL_STRATEGY, sort_keys=False))
    slow = copy.deepcopy(SMALL_STRATEGY)
    slow["name"] = "test_slow"
    slow["model"]["training"]["epochs"] = 400
    slow["model"]["training"]["batch_size"] = 32
    (path / "test_slow.yaml").write_text(yaml.safe_dump(slow, sort_keys=False))
    (path / "broken.yaml").write_text(
        "name: broken\nindicators: {rsi_14: {type: rsi, period: 1}}\n"
    )
    settings.KTRDR = {**settings.KTRDR, "STRATEGIES_DIR": path}
    return path


@pytest.fixture
def store_bars(monkeypatch, csv_loader):
    """Runs started through the services read the CSV instead of the market-data store."""
    monkeypatch.setattr("training.executor.default_load_bars", csv_loader)
    return csv_loader
