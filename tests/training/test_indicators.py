"""Indicators against hand-computed values, textbook tables and independent loop implementations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from training.indicators import INDICATORS, compute_indicator

# Wilder RSI worked example (StockCharts "RSI" ChartSchool table, 14 periods).
RSI_CLOSES = [
    44.3389,
    44.0902,
    44.1497,
    43.6124,
    44.3278,
    44.8264,
    45.0955,
    45.4245,
    45.8433,
    46.0826,
    45.8931,
    46.0328,
    45.6140,
    46.2820,
    46.2820,
    46.0028,
    46.0328,
    46.4116,
    46.2222,
    45.6439,
    46.2122,
    46.2521,
    45.7137,
    46.4515,
    45.7835,
    45.3548,
    44.0288,
    44.1783,
    44.2181,
    44.5672,
    43.4205,
    42.6628,
    43.1314,
]
RSI_EXPECTED = [
    70.53,
    66.32,
    66.55,
    69.41,
    66.36,
    57.97,
    62.93,
    63.26,
    56.06,
    62.38,
    54.71,
    50.42,
    39.99,
    41.46,
    41.87,
    45.46,
    37.30,
    33.08,
    37.77,
]


def bars(close, high=None, low=None, volume=None) -> pd.DataFrame:
    close = np.asarray(close, dtype=float)
    return pd.DataFrame(
        {
            "open": close,
            "high": close if high is None else np.asarray(high, float),
            "low": close if low is None else np.asarray(low, float),
            "close": close,
            "volume": np.zeros_like(close) if volume is None else np.asarray(volume, float),
        },
        index=pd.date_range("2020-01-01", periods=len(close), freq="h", tz="UTC"),
    )


def random_bars(n=300, seed=1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    spread = np.abs(rng.normal(0, 0.5, n))
    return bars(close, close + spread, close - spread, rng.integers(1, 1000, n))


def ind(type_, frame, **params):
    spec = INDICATORS[type_]
    full = {p.name: p.default for p in spec.params}
    full.update(params)
    return compute_indicator(type_, frame, full)


# --- independent reference implementations (plain loops, textbook definitions) ----------------
def ref_ema(x, n):
    out = [math.nan] * len(x)
    first = next(i for i, v in enumerate(x) if not math.isnan(v))
    if first + n > len(x):
        return out
    out[first + n - 1] = sum(x[first : first + n]) / n
    k = 2 / (n + 1)
    for i in range(first + n, len(x)):
        out[i] = x[i] * k + out[i - 1] * (1 - k)
    return out


def ref_wilder_rsi(close, n):
    out = [math.nan] * len(close)
    changes = [close[i] - close[i - 1] for i in range(1, len(close))]
    gains = [max(c, 0) for c in changes]
    losses = [max(-c, 0) for c in changes]
    avg_g, avg_l = sum(gains[:n]) / n, sum(losses[:n]) / n
    out[n] = 100 - 100 / (1 + avg_g / avg_l)
    for i in range(n, len(changes)):
        avg_g = (avg_g * (n - 1) + gains[i]) / n
        avg_l = (avg_l * (n - 1) + losses[i]) / n
        out[i + 1] = 100 - 100 / (1 + avg_g / avg_l)
    return out


def ref_adx(high, low, close, n):
    """Wilder's original: smoothed sums of TR/+DM/-DM from bar 1, ADX = smoothed DX."""
    size = len(close)
    tr, pdm, mdm = [0.0] * size, [0.0] * size, [0.0] * size
    for i in range(1, size):
        tr[i] = max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))
        up, down = high[i] - high[i - 1], low[i - 1] - low[i]
        pdm[i] = up if up > down and up > 0 else 0.0
        mdm[i] = down if down > up and down > 0 else 0.0
    adx, pdi_out, mdi_out = [math.nan] * size, [math.nan] * size, [math.nan] * size
    str_, spdm, smdm = sum(tr[1 : n + 1]), sum(pdm[1 : n + 1]), sum(mdm[1 : n + 1])
    dxs = []
    for i in range(n, size):
        if i > n:
            str_ = str_ - str_ / n + tr[i]
            spdm = spdm - spdm / n + pdm[i]
            smdm = smdm - smdm / n + mdm[i]
        pdi, mdi = 100 * spdm / str_, 100 * smdm / str_
        pdi_out[i], mdi_out[i] = pdi, mdi
        dxs.append(100 * abs(pdi - mdi) / (pdi + mdi))
        if len(dxs) == n:
            adx[i] = sum(dxs) / n
        elif len(dxs) > n:
            adx[i] = (adx[i - 1] * (n - 1) + dxs[-1]) / n
    return adx, pdi_out, mdi_out


# --- hand-computed small series -------------------------------------------------------------
def test_sma_of_a_small_series():
    out = ind("sma", bars([1, 2, 3, 4, 5]), period=3)["value"]
    assert np.isnan(out[:2]).all()
    assert out[2:].tolist() == [2.0, 3.0, 4.0]


def test_ema_is_seeded_with_the_sma_then_smooths():
    out = ind("ema", bars([2, 4, 6, 8, 12]), period=3)["value"]
    # seed SMA(2,4,6)=4; a=0.5: 0.5·8+0.5·4=6; 0.5·12+0.5·6=9
    assert np.isnan(out[:2]).all()
    assert out[2:].tolist() == pytest.approx([4.0, 6.0, 9.0])


def test_roc_is_percent_change_over_the_period():
    out = ind("roc", bars([10, 11, 12.1, 9.68]), period=1)["value"]
    assert np.isnan(out[0])
    assert out[1:].tolist() == pytest.approx([10.0, 10.0, -20.0])


def test_obv_adds_volume_on_up_closes_and_subtracts_on_down_closes():
    out = ind("obv", bars([10, 11, 10.5, 10.5, 12], volume=[100, 200, 150, 120, 300]))["value"]
    assert out.tolist() == [0.0, 200.0, 50.0, 50.0, 350.0]


def test_obv_of_zero_volume_is_a_constant_zero_column():
    assert (ind("obv", random_bars().assign(volume=0.0))["value"] == 0).all()


def test_atr_uses_true_range_and_wilder_smoothing():
    frame = bars([9.5, 10.5, 11.5, 10, 12], high=[10, 11, 12, 11, 13], low=[9, 10, 10, 9, 11])
    out = ind("atr", frame, period=3)["value"]
    # TR = 1, 1.5, 2, 2.5, 3; seed mean(1, 1.5, 2) = 1.5; (1.5·2+2.5)/3; (that·2+3)/3
    assert np.isnan(out[:2]).all()
    assert out[2:].tolist() == pytest.approx([1.5, 5.5 / 3, (5.5 / 3 * 2 + 3) / 3])


def test_bollinger_uses_the_population_deviation():
    out = ind("bollinger", bars([1, 2, 3]), period=3, std_dev=2.0)
    sd = math.sqrt(2 / 3)
    assert out["middle"][2] == pytest.approx(2.0)
    assert out["upper"][2] == pytest.approx(2 + 2 * sd)
    assert out["lower"][2] == pytest.approx(2 - 2 * sd)
    assert out["percent_b"][2] == pytest.approx((3 - (2 - 2 * sd)) / (4 * sd))
    assert out["width"][2] == pytest.approx(4 * sd / 2)


def test_stochastic_k_is_the_close_position_in_the_lookback_range():
    frame = bars([5, 6, 7, 6], high=[6, 7, 8, 9], low=[4, 5, 6, 5])
    out = ind("stochastic", frame, k_period=3, d_period=2, smooth=1)
    # bar 2: range 4..8, close 7 → 75; bar 3: range 5..9, close 6 → 25; %D = mean = 50
    assert out["k"][2:].tolist() == pytest.approx([75.0, 25.0])
    assert out["d"][3] == pytest.approx(50.0)


def test_stochastic_of_a_flat_range_is_neutral_not_nan():
    out = ind("stochastic", bars([5.0] * 20), k_period=5, d_period=3)
    assert (out["k"][4:] == 50.0).all()


# --- textbook table and independent implementations -------------------------------------------
def test_rsi_matches_wilders_worked_example():
    out = ind("rsi", bars(RSI_CLOSES), period=14)["value"]
    assert np.isnan(out[:14]).all()
    assert np.round(out[14:], 2).tolist() == pytest.approx(RSI_EXPECTED, abs=0.011)


def test_rsi_matches_an_independent_loop_on_random_walks():
    frame = random_bars(500)
    out = ind("rsi", frame, period=9)["value"]
    expected = ref_wilder_rsi(frame["close"].tolist(), 9)
    np.testing.assert_allclose(out[9:], expected[9:], rtol=1e-10)


def test_ema_and_macd_match_an_independent_loop():
    frame = random_bars(400, seed=5)
    close = frame["close"].tolist()
    macd = ind("macd", frame, fast=12, slow=26, signal=9)
    line = [a - b for a, b in zip(ref_ema(close, 12), ref_ema(close, 26), strict=True)]
    signal = ref_ema(line, 9)
    np.testing.assert_allclose(macd["macd"][25:], line[25:], rtol=1e-10)
    np.testing.assert_allclose(macd["signal"][33:], signal[33:], rtol=1e-10)
    assert np.isnan(macd["signal"][:33]).all()
    np.testing.assert_allclose(macd["histogram"][33:], np.subtract(line, signal)[33:], rtol=1e-9)


def test_adx_and_directional_lines_match_wilders_loop():
    frame = random_bars(300, seed=9)
    out = ind("adx", frame, period=14)
    adx, pdi, mdi = ref_adx(
        frame["high"].tolist(), frame["low"].tolist(), frame["close"].tolist(), 14
    )
    np.testing.assert_allclose(out["plus_di"][14:], pdi[14:], rtol=1e-9)
    np.testing.assert_allclose(out["minus_di"][14:], mdi[14:], rtol=1e-9)
    assert np.isnan(out["adx"][:27]).all()
    np.testing.assert_allclose(out["adx"][27:], adx[27:], rtol=1e-9)


@pytest.mark.parametrize("type_", sorted(INDICATORS))
def test_every_indicator_is_causal(type_):
    """A value at bar t never changes when later bars change."""
    frame = random_bars(200, seed=3)
    full = ind(type_, frame)
    cut = ind(type_, frame.iloc[:120])
    for name in full:
        np.testing.assert_allclose(full[name][:120], cut[name], rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("type_", sorted(INDICATORS))
def test_every_indicator_is_defined_after_its_warmup(type_):
    out = ind(type_, random_bars(200, seed=4))
    for name, values in out.items():
        assert np.isfinite(values[60:]).all(), f"{type_}.{name} has NaN after bar 60"
