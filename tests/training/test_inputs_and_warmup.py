"""Model inputs free of price levels, and features that start only once their indicators have
converged (docs/research.md): a window started later gives the same features after its warm-up,
and the rows before convergence never reach training."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.training.conftest import SMALL_STRATEGY, make_loader
from training import evaluation
from training import features as feat
from training.dataset import build_dataset
from training.executor import TrainingExecutor
from training.indicators import INDICATORS, compute_indicator
from training.strategy import parse_strategy, validate_strategy

SHIPPED = sorted((Path(__file__).resolve().parents[2] / "strategies").glob("*.yaml"))


def bars(close, high=None, low=None) -> pd.DataFrame:
    close = np.asarray(close, float)
    return pd.DataFrame(
        {
            "open": close,
            "high": close if high is None else np.asarray(high, float),
            "low": close if low is None else np.asarray(low, float),
            "close": close,
            "volume": np.zeros_like(close),
        },
        index=pd.date_range("2020-01-01", periods=len(close), freq="h", tz="UTC"),
    )


def test_the_distance_outputs_are_the_close_relative_to_its_average():
    frame = bars([10.0, 12.0, 14.0, 12.0])
    sma = compute_indicator("sma", frame, {"period": 2, "source": "close"})
    # SMA(2): -, 11, 13, 13 → distance 12/11 - 1, 14/13 - 1, 12/13 - 1.
    np.testing.assert_allclose(sma["distance"][1:], [12 / 11 - 1, 14 / 13 - 1, 12 / 13 - 1])
    assert np.isnan(sma["distance"][0])
    ema = compute_indicator("ema", frame, {"period": 2, "source": "close"})
    np.testing.assert_allclose(ema["distance"], frame["close"] / ema["value"] - 1)


def test_atr_percent_is_the_average_range_as_a_share_of_the_close():
    frame = bars([10.0, 10.0, 20.0, 20.0], high=[11, 11, 22, 22], low=[9, 9, 18, 18])
    out = compute_indicator("atr", frame, {"period": 2})
    np.testing.assert_allclose(out["percent"], out["value"] / frame["close"])
    # Doubling every price doubles the ATR and leaves its percentage unchanged.
    doubled = compute_indicator(
        "atr",
        bars([20.0, 20.0, 40.0, 40.0], high=[22, 22, 44, 44], low=[18, 18, 36, 36]),
        {"period": 2},
    )
    np.testing.assert_allclose(doubled["percent"], out["percent"], equal_nan=True)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_no_shipped_strategy_feeds_a_price_level_and_none_drifts_on_eurusd(path, eurusd):
    config = parse_strategy(path.read_bytes(), expected_name=path.stem)
    assert feat.price_level_inputs(config) == []
    history = config["training_data"]["history"]
    frame = eurusd[(eurusd.index >= history["start"]) & (eurusd.index <= history["end"])]
    timeframes = config["training_data"]["timeframes"]
    by_tf = {tf: frame if tf == "1h" else feat.resample_bars(frame, tf) for tf in timeframes}
    features, close, _ = feat.compute_features(config, "EURUSD", by_tf, timeframes)
    data = build_dataset(config, {"EURUSD": (features, close)})
    drift = evaluation.feature_drift(
        data.splits["train"].x,
        data.splits["test"].x,
        data.feature_names,
        feat.feature_kinds(config),
    )
    assert drift  # every shipped strategy has indicator inputs
    assert max(abs(z) for z in drift.values()) < evaluation.DRIFT_Z


def test_a_raw_price_level_input_is_named_in_a_warning(eurusd, tmp_path):
    raw = copy.deepcopy(SMALL_STRATEGY)
    raw["indicators"]["sma_20"] = {"type": "sma", "period": 20}
    raw["model_inputs"] = [*raw["model_inputs"], "sma_20"]
    config = validate_strategy(raw)
    assert feat.price_level_inputs(config) == ["sma_20.value"]
    ex = TrainingExecutor(
        config=config, models_dir=tmp_path, load_bars=make_loader(eurusd), save=False
    )
    codes = {w["code"]: w for w in ex.run()["warnings"]}
    assert codes["price_level_input"]["detail"]["inputs"] == ["sma_20.value"]
    # The same input as a distance raises no such warning.
    raw["model_inputs"][-1] = "sma_20.distance"
    assert feat.price_level_inputs(validate_strategy(raw)) == []


def test_each_indicator_type_converges_after_its_documented_factor():
    warmup = {t: spec.warmup_bars for t, spec in INDICATORS.items()}
    assert warmup["ema"]({"period": 50}) == 250  # 5 x period
    assert warmup["rsi"]({"period": 14}) == 141  # 1 + 10 x period (Wilder)
    assert warmup["atr"]({"period": 14}) == 141
    assert warmup["adx"]({"period": 14}) == 281  # Wilder twice
    assert warmup["macd"]({}) == 175  # 5 x (26 + 9)
    assert warmup["sma"]({"period": 20}) == 20  # exact once defined
    assert warmup["bollinger"]({"period": 20}) == 20
    assert warmup["stochastic"]({"k_period": 14, "d_period": 3, "smooth": 3}) == 20
    assert warmup["roc"]({"period": 6}) == 6


RECURSIVE = {
    "name": "test_recursive",
    "indicators": {
        "rsi_14": {"type": "rsi", "period": 14},
        "macd": {"type": "macd"},
        "atr_14": {"type": "atr", "period": 14},
        "ema_50": {"type": "ema", "period": 50},
        "adx_14": {"type": "adx", "period": 14},
    },
    "model_inputs": [
        "rsi_zone.low",
        "rsi_zone.high",
        "rsi_14",
        "macd.histogram",
        "atr_14.percent",
        "ema_50.distance",
        "adx_14.adx",
        "adx_14.plus_di",
    ],
}


def recursive_config() -> dict:
    raw = copy.deepcopy(SMALL_STRATEGY)
    raw.update(copy.deepcopy(RECURSIVE))
    return validate_strategy(raw)


def test_a_window_started_later_gives_the_same_features_after_its_warm_up(eurusd):
    config = recursive_config()
    series = eurusd.iloc[:4000]
    full, _, full_warmup = feat.compute_features(config, "EURUSD", {"1h": series}, ["1h"])
    late, _, late_warmup = feat.compute_features(
        config, "EURUSD", {"1h": series.iloc[1000:]}, ["1h"]
    )
    assert full_warmup == late_warmup == 281  # ADX(14) converges last
    assert late.index[0] == series.index[1000 + 281]
    scale = full.std().to_numpy()
    gap = (full.loc[late.index] - late).abs().to_numpy() / scale
    # EMA-type smoothing: the seed's weight is e^-10 of the value after the warm-up.
    assert gap.max() < 1e-4


def test_rows_defined_but_not_converged_would_differ_so_they_are_dropped(eurusd):
    """What the warm-up protects against: right after an EMA-type indicator is *defined* its
    value still depends on where the series started."""
    series = eurusd.iloc[:4000]
    params = {"period": 14}
    full = compute_indicator("adx", series, params)["adx"]
    late = compute_indicator("adx", series.iloc[1000:], params)["adx"]
    first_defined = int(np.flatnonzero(np.isfinite(late))[0])
    early_gap = abs(full[1000 + first_defined] - late[first_defined])
    converged = INDICATORS["adx"].warmup_bars(params)
    late_gap = abs(full[1000 + converged] - late[converged])
    assert early_gap > 100 * late_gap
    assert early_gap / np.nanstd(full) > 1e-2


def test_training_starts_after_the_warm_up(eurusd, tmp_path):
    config = recursive_config()
    loader = make_loader(eurusd)
    ex = TrainingExecutor(config=config, models_dir=tmp_path, load_bars=loader, save=False)
    result = ex.run()
    assert result["data"]["warmup_rows"] == {"EURUSD": 281}
    loaded = loader("EURUSD", "1h", ex.start, ex.end)
    first_train = ex.dataset.splits["train"].timestamps[0]
    assert first_train >= loaded.index[281]
    assert (ex.dataset.splits["train"].timestamps >= loaded.index[281]).all()
