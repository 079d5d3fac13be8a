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


def label_horizon(labels: dict) -> int | None:
    """How many bars past a bar its label looks: `horizon` for forward-return labels; None for
    zigzag labels, whose look-ahead runs to the next confirmed pivot (unbounded; labelling each
    segment on its own closes is what keeps it inside the segment)."""
    if labels.get("type") == "forward_return":
        return int(labels["horizon"])
    return None


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
    # One pass over Python floats (the same IEEE doubles as the array, several times faster to
    # compare than NumPy scalars); the walk is sequential, so it stays a loop.
    prices: list[float] = np.asarray(close, dtype=float).tolist()
    n = len(prices)
    pivots: list[tuple[int, int]] = []
    if n == 0:
        return pivots
    rise, fall = 1.0 + threshold, 1.0 - threshold
    direction = 0  # unknown until the first move of `threshold` from the running extremes
    hi_i = lo_i = 0
    hi = lo = prices[0]
    for i in range(1, n):
        c = prices[i]
        if direction == 0:
            if c > hi:
                hi_i, hi = i, c
            if c < lo:
                lo_i, lo = i, c
            if c >= lo * rise and lo_i < i:
                pivots.append((lo_i, -1))
                direction, hi_i, hi = 1, i, c
            elif c <= hi * fall and hi_i < i:
                pivots.append((hi_i, 1))
                direction, lo_i, lo = -1, i, c
        elif direction == 1:  # rising leg: track the peak, confirm it on a drop of threshold
            if c > hi:
                hi_i, hi = i, c
            elif c <= hi * fall:
                pivots.append((hi_i, 1))
                direction, lo_i, lo = -1, i, c
        elif c < lo:  # falling leg: track the trough, confirm it on a rise
            lo_i, lo = i, c
        elif c >= lo * rise:
            pivots.append((lo_i, -1))
            direction, hi_i, hi = 1, i, c
    return pivots


def zigzag_labels(close: np.ndarray, *, threshold: float) -> np.ndarray:
    """Label each bar by the zigzag leg it lies on.

    Legs run from one pivot (inclusive) to the next (exclusive). A bar before an up-leg's peak
    is BUY while the remaining rise to that peak is still ≥ `threshold`, a bar before a down-leg's
    trough is SELL while the remaining fall is ≥ `threshold`; bars late in a leg (less than
    `threshold` left) are HOLD. Bars after the last confirmed pivot (an unfinished leg) are NaN.
    """
    close = np.asarray(close, dtype=float)
    out = np.full(close.shape[0], np.nan)
    pivots = zigzag_pivots(close, threshold)
    if not pivots:
        return out
    at = np.fromiter((index for index, _ in pivots), dtype=np.intp, count=len(pivots))
    kind = np.fromiter((k for _, k in pivots), dtype=np.int8, count=len(pivots))
    labelled = int(at[-1])  # bars from the last pivot on have no finished leg
    seg = close[:labelled]
    # A bar's leg ends at the first pivot after it; a pivot bar itself starts the next leg (a
    # trough is where to buy), so it belongs to that one.
    leg = np.searchsorted(at, np.arange(labelled), side="right")
    target = close[at[leg]]
    peak = kind[leg] == 1
    labels = np.full(labelled, float(Signal.HOLD))
    labels[peak & (target / seg - 1.0 >= threshold)] = float(Signal.BUY)
    labels[~peak & (seg / target - 1.0 >= threshold)] = float(Signal.SELL)
    out[:labelled] = labels
    return out
