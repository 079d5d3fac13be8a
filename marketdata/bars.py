"""The bar-frame rules every write obeys: shape, validation and merging (pure pandas).

A bar frame has a tz-aware UTC DatetimeIndex named "timestamp" (the bar's start, nanosecond
precision), float64 columns open, high, low, close, volume, sorted ascending with no duplicate
timestamps, and high ≥ max(open, close) ≥ min(open, close) ≥ low, volume ≥ 0, all finite.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

COLUMNS = ("open", "high", "low", "close", "volume")
INDEX_NAME = "timestamp"
INDEX_DTYPE = "datetime64[ns, UTC]"


class BarValidationError(ValueError):
    """A frame breaks a bar rule; the message says which rule and at which timestamp/row."""


def empty_bars() -> pd.DataFrame:
    index = pd.DatetimeIndex([], tz="UTC", name=INDEX_NAME).as_unit("ns")
    return pd.DataFrame({c: pd.Series([], dtype="float64") for c in COLUMNS}, index=index)


def normalize(df: pd.DataFrame) -> pd.DataFrame:
    """The canonical shape (index unit/tz/name, column order and dtype); no reordering."""
    if not isinstance(df.index, pd.DatetimeIndex):
        raise BarValidationError("bars need a DatetimeIndex of bar start times")
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise BarValidationError(f"bars are missing the column(s) {', '.join(missing)}")
    index = df.index
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    out = df.loc[:, list(COLUMNS)].astype("float64").copy()
    out.index = index.as_unit("ns").rename(INDEX_NAME)
    return out


def _where(df: pd.DataFrame, mask: np.ndarray) -> str:
    first = int(np.flatnonzero(mask)[0])
    return f"{int(mask.sum())} bar(s), first at {df.index[first].isoformat()}"


def validate_bars(df: pd.DataFrame) -> pd.DataFrame:
    """Return the normalised frame or raise BarValidationError naming the rule and the place."""
    df = normalize(df)
    if df.empty:
        return df
    values = df.to_numpy()
    if not np.isfinite(values).all():
        bad = ~np.isfinite(values).all(axis=1)
        raise BarValidationError(f"non-finite price or volume in {_where(df, bad)}")
    ts = df.index.asi8
    if len(ts) > 1:
        diffs = np.diff(ts)
        if (diffs == 0).any():
            dup = np.concatenate([[False], diffs == 0])
            raise BarValidationError(f"duplicate timestamps: {_where(df, dup)}")
        if (diffs < 0).any():
            back = np.concatenate([[False], diffs < 0])
            raise BarValidationError(f"timestamps not increasing: {_where(df, back)}")
    o, h, low, c, v = (values[:, i] for i in range(5))
    checks = (
        (h < np.maximum(o, c), "high below max(open, close)"),
        (low > np.minimum(o, c), "low above min(open, close)"),
        ((o <= 0) | (c <= 0) | (low <= 0), "non-positive price"),
        (v < 0, "negative volume"),
    )
    for mask, rule in checks:
        if mask.any():
            raise BarValidationError(f"{rule} in {_where(df, mask)}")
    return df


def merge_bars(existing: pd.DataFrame, *new_frames: pd.DataFrame) -> pd.DataFrame:
    """Union of the frames, sorted, one bar per timestamp; later frames win on a collision.

    Stored bars outside the new frames' ranges are always kept: a ranged or partial load can
    only add or correct bars, never drop them.
    """
    frames = [normalize(f) for f in (existing, *new_frames) if f is not None and len(f)]
    if not frames:
        return empty_bars()
    merged = pd.concat(frames)
    # keep="last": a fresh fetch corrects what was stored for the same timestamp.
    merged = merged[~merged.index.duplicated(keep="last")]
    return merged.sort_index(kind="stable")


def concat_bars(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    return merge_bars(empty_bars(), *frames)


def clip_range(df: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp | None):
    """Bars with start ≤ timestamp < end (either bound optional)."""
    mask = np.ones(len(df), dtype=bool)
    if start is not None:
        mask &= df.index >= start
    if end is not None:
        mask &= df.index < end
    return df[mask]
