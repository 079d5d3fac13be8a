"""Labels: one Signal enum; forward-return and zigzag labellers on hand-made series."""

from __future__ import annotations

import numpy as np

from training.labels import (
    SIGNAL_NAMES,
    Signal,
    forward_return_labels,
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
