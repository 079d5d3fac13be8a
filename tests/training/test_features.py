"""Features: bar checks, warm-up, multi-timeframe alignment without look-ahead, normalisation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.training.conftest import small_config_with
from training import features as feat
from training.errors import TrainingDataError


@pytest.fixture
def slice_1h(eurusd):
    return eurusd.loc["2017-01-01":"2017-03-01"]


def test_nan_in_bars_is_refused_naming_column_and_time(slice_1h):
    broken = slice_1h.copy()
    broken.iloc[100, broken.columns.get_loc("close")] = np.nan
    stamp = broken.index[100].strftime("%Y-%m-%dT%H:%MZ")
    with pytest.raises(
        TrainingDataError, match=f"1 NaN/infinite value.* column close .first at {stamp}"
    ):
        feat.check_bars(broken, "EURUSD", "1h")


def test_duplicate_timestamps_are_refused(slice_1h):
    doubled = pd.concat([slice_1h.iloc[:10], slice_1h.iloc[9:20]])
    with pytest.raises(TrainingDataError, match="appears more than once"):
        feat.check_bars(doubled, "EURUSD", "1h")


def test_missing_columns_are_named(slice_1h):
    with pytest.raises(TrainingDataError, match=r"missing column.*volume"):
        feat.check_bars(slice_1h.drop(columns=["volume"]), "EURUSD", "1h")


def test_warmup_rows_are_dropped_and_counted(small_config, slice_1h):
    frame, close, warmup = feat.compute_features(small_config, "EURUSD", {"1h": slice_1h}, ["1h"])
    # MACD(12, 26, 9) converges last: 5 x (26 + 9) = 175 bars (its signal line is *defined* from
    # bar 33, still carrying its seed); RSI and ATR(14) need 1 + 10 x 14 = 141.
    assert warmup == 175
    assert frame.index[0] == slice_1h.index[175]
    assert np.isfinite(frame.to_numpy()).all()
    assert close.index.equals(frame.index)


def test_higher_timeframe_values_are_used_only_after_their_bar_closed(slice_1h):
    config = small_config_with(training_data__timeframes=["1h", "4h"])
    four = feat.resample_bars(slice_1h, "4h")
    frame, _, _ = feat.compute_features(
        config, "EURUSD", {"1h": slice_1h, "4h": four}, ["1h", "4h"]
    )
    col = "4h:macd.histogram"
    raw_4h = feat.timeframe_inputs(config, four)["macd.histogram"]
    for ts in frame.index[200:260]:
        base_close = ts + pd.Timedelta(hours=1)
        closed = raw_4h[raw_4h.index + pd.Timedelta(hours=4) <= base_close]
        assert frame.at[ts, col] == closed.iloc[-1]


def test_resampling_builds_utc_aligned_ohlc(slice_1h):
    four = feat.resample_bars(slice_1h, "4h")
    assert (four.index.hour % 4 == 0).all()
    window = slice_1h.loc[four.index[5] : four.index[5] + pd.Timedelta(minutes=239)]
    assert four.iloc[5]["high"] == window["high"].max()
    assert four.iloc[5]["open"] == window["open"].iloc[0]
    assert four.iloc[5]["close"] == window["close"].iloc[-1]


def test_normalisation_uses_training_rows_and_survives_a_constant_column():
    train = np.array([[1.0, 0.0, 0.2], [3.0, 0.0, 0.8]])
    names = ["1h:a.value", "1h:obv.value", "1h:zone.low"]
    kinds = {"a.value": "indicator", "obv.value": "indicator", "zone.low": "fuzzy"}
    means, stds = feat.normalisation(train, names, kinds)
    assert means == [2.0, 0.0, 0.0]
    assert stds == [1.0, 1.0, 1.0]
    out = feat.apply_normalisation(train, means, stds)
    assert out[:, 1].tolist() == [0.0, 0.0]
    assert out[:, 2].tolist() == pytest.approx([0.2, 0.8])
