"""Labels: one Signal enum; forward-return and zigzag labellers on hand-made series."""

from __future__ import annotations

import numpy as np
import pytest

from training.labels import (
    SIGNAL_NAMES,
    Signal,
    forward_return_labels,
    label_horizon,
    zigzag_labels,
    zigzag_pivots,
)

B, H, S = float(Signal.BUY), float(Signal.HOLD), float(Signal.SELL)


def test_signal_enum_orders_buy_hold_sell_as_model_outputs():
    assert [s.value for s in Signal] == [0, 1, 2]
    assert SIGNAL_NAMES == ("BUY", "HOLD", "SELL")


def test_forward_return_labels_use_the_threshold_and_leave_the_tail_undefined():
    close = np.array([100, 101, 100, 98, 98.1])
    out = forward_return_labels(close, horizon=1, threshold=0.005)
    assert out[:4].tolist() == [B, S, S, H]
    assert np.isnan(out[4])


def test_zigzag_pivots_alternate_and_need_a_reversal_of_threshold():
    close = np.array([100, 102, 104, 103, 101, 99, 100, 103, 102])
    assert zigzag_pivots(close, 0.02) == [(0, -1), (2, 1), (5, -1)]


def test_zigzag_labels_legs_and_leaves_the_unfinished_leg_undefined():
    close = np.array([100, 102, 104, 103, 101, 99, 100, 103, 102])
    out = zigzag_labels(close, threshold=0.02)
    # leg 0→2 rises to 104: bar 0 has 4 % left (BUY), bar 1 1.96 % (< 2 %: HOLD);
    # leg 2→5 falls to 99: bars 2, 3 have ≥ 2 % left (SELL), bar 4 2.0 % (SELL);
    # bars from the last pivot (5) on: the leg is not confirmed yet → NaN.
    assert out[:5].tolist() == [B, H, S, S, S]
    assert np.isnan(out[5:]).all()


def test_zigzag_of_a_flat_series_has_no_labels():
    assert np.isnan(zigzag_labels(np.full(50, 1.1), threshold=0.01)).all()


# --- the vectorised labellers against a straightforward reference -----------------------------
def reference_zigzag_pivots(close, threshold):
    """The zigzag walk written the plain way, element by element on the array."""
    pivots, direction, hi_i, lo_i = [], 0, 0, 0
    for i in range(1, len(close)):
        c = close[i]
        if direction == 0:
            if c > close[hi_i]:
                hi_i = i
            if c < close[lo_i]:
                lo_i = i
            if c >= close[lo_i] * (1.0 + threshold) and lo_i < i:
                pivots.append((lo_i, -1))
                direction, hi_i = 1, i
            elif c <= close[hi_i] * (1.0 - threshold) and hi_i < i:
                pivots.append((hi_i, 1))
                direction, lo_i = -1, i
        elif direction == 1:
            if c > close[hi_i]:
                hi_i = i
            elif c <= close[hi_i] * (1.0 - threshold):
                pivots.append((hi_i, 1))
                direction, lo_i = -1, i
        elif c < close[lo_i]:
            lo_i = i
        elif c >= close[lo_i] * (1.0 + threshold):
            pivots.append((lo_i, -1))
            direction, hi_i = 1, i
    return pivots


def reference_zigzag_labels(close, threshold):
    """One leg at a time: the bars from one pivot up to the next, against that next pivot."""
    out = np.full(len(close), np.nan)
    start = 0
    for index, kind in reference_zigzag_pivots(close, threshold):
        for j in range(start, index):
            if kind == 1:
                out[j] = B if close[index] / close[j] - 1.0 >= threshold else H
            else:
                out[j] = S if close[j] / close[index] - 1.0 >= threshold else H
        start = index
    return out


def random_walk(n, seed, step=0.004):
    rng = np.random.default_rng(seed)
    return 100 * np.exp(np.cumsum(rng.normal(0, step, n)))


@pytest.mark.parametrize(("seed", "threshold"), [(0, 0.005), (1, 0.01), (2, 0.002), (3, 0.03)])
def test_zigzag_pivots_and_labels_equal_the_reference_walk(seed, threshold):
    close = random_walk(3000, seed)
    assert zigzag_pivots(close, threshold) == reference_zigzag_pivots(close, threshold)
    np.testing.assert_array_equal(
        zigzag_labels(close, threshold=threshold), reference_zigzag_labels(close, threshold)
    )


def test_zigzag_labels_equal_the_reference_on_plateaus_and_exact_threshold_moves():
    # Repeated prices and moves of exactly the threshold are where < and <= differ.
    close = np.array([100, 100, 102, 102, 100, 99.96, 99.96, 101.9592, 103, 103, 100.94, 100.94])
    for threshold in (0.02, 0.0196, 0.01):
        assert zigzag_pivots(close, threshold) == reference_zigzag_pivots(close, threshold)
        np.testing.assert_array_equal(
            zigzag_labels(close, threshold=threshold), reference_zigzag_labels(close, threshold)
        )


def test_the_label_horizon_is_the_forward_returns_and_none_for_zigzag():
    assert label_horizon({"type": "forward_return", "horizon": 12, "threshold": 0.002}) == 12
    assert label_horizon({"type": "zigzag", "threshold": 0.01}) is None
