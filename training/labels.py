"""Training targets: the one `Signal` enum and the two labelers (zigzag, forward return).

Labelers take the closes of one contiguous segment (one split of one symbol) and return a float
array with a class per bar or NaN where the label is undefined (the look-ahead runs past the end of
the segment). Computing them per segment is what keeps a label from looking across a split
boundary: a bar near the end of the training split is dropped, never labelled with a price from the
validation split.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Signal(IntEnum):
    """The class a model predicts. Its integer value is the model's output index."""

    BUY = 0
    HOLD = 1
    SELL = 2


SIGNAL_NAMES: tuple[str, ...] = tuple(s.name for s in Signal)
NUM_CLASSES = len(Signal)


def forward_return_labels(close: np.ndarray, *, horizon: int, threshold: float) -> np.ndarray:
    """BUY if close[t+horizon]/close[t]-1 ≥ threshold, SELL if ≤ -threshold, else HOLD.

    The last `horizon` bars have no future close inside the segment: NaN.
    """
    close = np.asarray(close, dtype=float)
    out = np.full(close.shape[0], np.nan)
    if close.shape[0] <= horizon:
        return out
    ret = close[horizon:] / close[:-horizon] - 1.0
    labels = np.full(ret.shape[0], float(Signal.HOLD))
    labels[ret >= threshold] = float(Signal.BUY)
    labels[ret <= -threshold] = float(Signal.SELL)
    out[:-horizon] = labels
    return out


def zigzag_pivots(close: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Confirmed zigzag pivots as (index, +1 peak / -1 trough), alternating, oldest first.

    A pivot is confirmed once price has moved `threshold` (a fraction) away from it in the other
    direction. The last candidate extreme is never confirmed, so bars after the last pivot have
    no known leg.
    """
    close = np.asarray(close, dtype=float)
    n = close.shape[0]
    pivots: list[tuple[int, int]] = []
    if n == 0:
        return pivots
    direction = 0  # unknown until the first move of `threshold` from the running extremes
    hi_i = lo_i = 0
    for i in range(1, n):
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
        elif direction == 1:  # rising leg: track the peak, confirm it on a drop of threshold
            if c > close[hi_i]:
                hi_i = i
            elif c <= close[hi_i] * (1.0 - threshold):
                pivots.append((hi_i, 1))
                direction, lo_i = -1, i
        elif c < close[lo_i]:  # falling leg: track the trough, confirm it on a rise
            lo_i = i
        elif c >= close[lo_i] * (1.0 + threshold):
            pivots.append((lo_i, -1))
            direction, hi_i = 1, i
    return pivots


def zigzag_labels(close: np.ndarray, *, threshold: float) -> np.ndarray:
    """Label each bar by the zigzag leg it lies on.

    Legs run from one pivot (inclusive) to the next (exclusive). A bar before an up-leg's peak
    is BUY while the remaining rise to that peak is still ≥ `threshold`, a bar before a down-leg's
    trough is SELL while the remaining fall is ≥ `threshold`; bars late in a leg (less than
    `threshold` left) are HOLD. Bars after the last confirmed pivot (an unfinished leg) are NaN.
    """
    close = np.asarray(close, dtype=float)
    n = close.shape[0]
    out = np.full(n, np.nan)
    pivots = zigzag_pivots(close, threshold)
    start = 0
    for index, kind in pivots:
        seg = close[start:index]
        target = close[index]
        labels = np.full(seg.shape[0], float(Signal.HOLD))
        if kind == 1:
            labels[target / seg - 1.0 >= threshold] = float(Signal.BUY)
        else:
            labels[seg / target - 1.0 >= threshold] = float(Signal.SELL)
        out[start:index] = labels
        # A pivot bar starts the next leg (a trough is where to buy), so it belongs to that leg.
        start = index
    return out
