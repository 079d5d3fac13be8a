"""Fuzzy membership functions: triangular, trapezoidal and gaussian, each mapping to [0, 1].

Parameters (as written in a strategy):

* triangular `[a, b, c]`, a ≤ b ≤ c: 0 outside [a, c], 1 at b, linear in between.
* trapezoidal `[a, b, c, d]`, a ≤ b ≤ c ≤ d: 1 on [b, c], linear shoulders. `a == b` (or
  `c == d`) makes a vertical shoulder, which is how an open-ended "low"/"high" set is written.
* gaussian `[mean, sigma]`, sigma > 0: exp(-(x-mean)² / (2·sigma²)).

NaN in gives NaN out (warm-up rows stay recognisable). No Django, no torch.
"""

from __future__ import annotations

import itertools

import numpy as np

PARAM_COUNTS = {"triangular": 3, "trapezoidal": 4, "gaussian": 2}


def check_parameters(kind: str, params: list[float]) -> str | None:
    """The problem with `params` for a `kind` set, or None when they are usable."""
    if kind not in PARAM_COUNTS:
        return f"unknown membership type {kind!r}; use one of {', '.join(PARAM_COUNTS)}"
    if len(params) != PARAM_COUNTS[kind]:
        return f"{kind} takes {PARAM_COUNTS[kind]} numbers, got {len(params)}"
    if any(np.isnan(p) for p in params):
        return f"{kind} parameters must be numbers, not NaN"
    if kind == "gaussian":
        if not all(np.isfinite(p) for p in params):
            return "gaussian parameters must be finite"
        return None if params[1] > 0 else "gaussian sigma (second number) must be > 0"
    # Infinite ends are allowed only as an open shoulder: -.inf twice at the start, .inf twice at
    # the end (a ramp from infinity would be NaN everywhere).
    if np.isinf(params[0]) and not (params[0] == params[1] == -np.inf):
        return f"{kind} may start at -.inf only as a shoulder (first two numbers both -.inf)"
    if np.isinf(params[-1]) and not (params[-1] == params[-2] == np.inf):
        return f"{kind} may end at .inf only as a shoulder (last two numbers both .inf)"
    if any(np.isinf(p) for p in params[1:-1]) and kind == "triangular":
        return "triangular peak must be finite"
    if any(b < a for a, b in itertools.pairwise(params)):
        return f"{kind} parameters must be in ascending order"
    if params[0] == params[-1]:
        return f"{kind} set has zero width (first and last numbers are equal)"
    return None


def _ramp(x: np.ndarray, lo: float, hi: float, rising: bool) -> np.ndarray:
    """Linear 0→1 on [lo, hi] (or 1→0); a zero-width ramp is a step."""
    if hi <= lo:
        return (x >= lo).astype(float) if rising else (x <= hi).astype(float)
    t = (x - lo) / (hi - lo)
    return np.clip(t if rising else 1.0 - t, 0.0, 1.0)


def membership(kind: str, params: list[float], x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if kind == "gaussian":
        mean, sigma = params
        out = np.exp(-((x - mean) ** 2) / (2.0 * sigma * sigma))
    elif kind == "triangular":
        a, b, c = params
        out = np.minimum(_ramp(x, a, b, True), _ramp(x, b, c, False))
        # The peak belongs to the set even when a shoulder has zero width.
        out = np.where(x == b, 1.0, out)
    elif kind == "trapezoidal":
        a, b, c, d = params
        out = np.minimum(_ramp(x, a, b, True), _ramp(x, c, d, False))
    else:
        raise ValueError(f"unknown membership type {kind!r}")
    return np.where(np.isnan(x), np.nan, out)
