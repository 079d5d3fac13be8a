"""The synthetic source: deterministic, range-independent, realistic sessions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from marketdata.bars import validate_bars
from marketdata.synthetic import generate_bars
from marketdata.timeframes import TIMEFRAMES

START = pd.Timestamp("2023-01-01", tz="UTC")
END = pd.Timestamp("2023-07-01", tz="UTC")


@pytest.mark.parametrize(("symbol", "tf"), [("EURUSD", "1h"), ("AAPL", "15m"), ("AAPL", "1d")])
def test_bars_are_the_same_whatever_range_is_asked(symbol, tf):
    whole = generate_bars(symbol, TIMEFRAMES[tf], START, END)
    cut = pd.Timestamp("2023-03-15 15:00", tz="UTC")
    parts = pd.concat(
        [
            generate_bars(symbol, TIMEFRAMES[tf], START, cut),
            generate_bars(symbol, TIMEFRAMES[tf], cut, END),
        ]
    )
    pd.testing.assert_frame_equal(whole, parts)
    validate_bars(whole)


def test_same_seed_same_bars_other_seed_other_bars():
    a = generate_bars("EURUSD", TIMEFRAMES["1h"], START, END, seed=1)
    b = generate_bars("EURUSD", TIMEFRAMES["1h"], START, END, seed=1)
    c = generate_bars("EURUSD", TIMEFRAMES["1h"], START, END, seed=2)
    pd.testing.assert_frame_equal(a, b)
    assert not a["close"].equals(c["close"])


def test_forex_has_no_saturday_bars_and_equities_trade_only_in_session():
    fx = generate_bars("EURUSD", TIMEFRAMES["1h"], START, END)
    assert not (fx.index.day_of_week == 5).any()
    stock = generate_bars("AAPL", TIMEFRAMES["1h"], START, END)
    local = stock.index.tz_convert("America/New_York")
    minutes = local.hour * 60 + local.minute
    assert (local.day_of_week < 5).all()
    assert ((minutes >= 570) & (minutes < 960)).all()
    assert pd.Timestamp("2023-07-04", tz="America/New_York").date() not in set(local.date)


def test_volatility_clusters_and_prices_trend():
    bars = generate_bars("AAPL", TIMEFRAMES["1d"], pd.Timestamp("2010-01-01", tz="UTC"), END)
    returns = np.log(bars["close"]).diff().dropna()
    # Clustering: absolute returns are autocorrelated (a plain random walk gives about zero).
    abs_r = returns.abs()
    assert abs_r.autocorr(lag=1) > 0.05
    # Trends: rolling quarterly drift is sometimes clearly up and sometimes clearly down.
    drift = returns.rolling(63).sum()
    assert drift.max() > 0.1
    assert drift.min() < -0.1
