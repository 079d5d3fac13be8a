"""Server-rendered price chart geometry for inline SVG (pure; docs/architecture.md §9)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

MAX_POINTS = 600


@dataclass(frozen=True)
class PriceChart:
    width: int
    height: int
    close_points: str  # "x,y x,y ..." for a <polyline>
    band_points: str  # high/low envelope as a closed <polygon>
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, str]]
    bars: int


def price_chart(frame: pd.DataFrame, *, width: int = 900, height: int = 300) -> PriceChart | None:
    """Close line plus high/low band, downsampled to at most MAX_POINTS buckets."""
    if frame.empty:
        return None
    n = len(frame)
    buckets = min(n, MAX_POINTS)
    edges = np.linspace(0, n, buckets + 1).astype(int)
    highs = np.maximum.reduceat(frame["high"].to_numpy(), edges[:-1])
    lows = np.minimum.reduceat(frame["low"].to_numpy(), edges[:-1])
    closes = frame["close"].to_numpy()[edges[1:] - 1]
    stamps = frame.index[edges[1:] - 1]
    pad_l, pad_r, pad_t, pad_b = 60, 10, 10, 24
    lo, hi = float(lows.min()), float(highs.max())
    span = hi - lo or abs(hi) or 1.0
    inner_w, inner_h = width - pad_l - pad_r, height - pad_t - pad_b
    xs = pad_l + inner_w * (np.arange(buckets) / max(buckets - 1, 1))

    def y(values: np.ndarray) -> np.ndarray:
        return pad_t + inner_h * (1 - (values - lo) / span)

    def points(x: np.ndarray, yv: np.ndarray) -> str:
        return " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(x, yv, strict=True))

    band = points(np.concatenate([xs, xs[::-1]]), np.concatenate([y(highs), y(lows)[::-1]]))
    y_ticks = [(float(y(np.array([v]))[0]), f"{v:.5g}") for v in np.linspace(lo, hi, 5)]
    x_idx = np.linspace(0, buckets - 1, min(buckets, 5)).astype(int)
    x_ticks = [(float(xs[i]), stamps[i].strftime("%Y-%m-%d")) for i in x_idx]
    return PriceChart(width, height, points(xs, y(closes)), band, y_ticks, x_ticks, n)
