"""The bar store: one Parquet file per symbol x timeframe under DATA_DIR, plus its BarSeries row.

Guarantees:
* `write_bars` validates, then *merges* into what is stored (a ranged or partial write never
  drops bars outside its range), writes a temp file in the same directory, fsyncs it and renames
  it over the old one: readers see the old file or the new one, never a partial one.
* Writers of one series are serialised (a thread lock plus an `flock` on a lock file, so two
  processes sharing a DATA_DIR also take turns).
* DATA_DIR is read on every call: an agent process or a test can point it elsewhere.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from django.db import transaction

from marketdata.bars import (
    BarValidationError,
    empty_bars,
    merge_bars,
    normalize,
    validate_bars,
)
from marketdata.gaps import analyze_gaps
from marketdata.models import BarSeries
from marketdata.symbols import parse_symbol
from marketdata.timeframes import get_timeframe
from operations.conf import ktrdr_setting
from operations.exceptions import InvalidInput, NotFound, ServiceUnavailable
from operations.files import disk_error_message, follow_umask

logger = logging.getLogger(__name__)

BARS_SUBDIR = "bars"
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


class SeriesNotFound(NotFound):
    """No bars are stored for this symbol and timeframe."""

    def __init__(self, symbol: str, timeframe: str) -> None:
        super().__init__(
            f"no bars stored for {symbol} {timeframe}",
            details={"symbol": symbol, "timeframe": timeframe},
        )


@dataclass(frozen=True)
class WriteResult:
    symbol: str
    timeframe: str
    bars_written: int  # bars in the frame given
    bars_added: int  # bars the series did not have before
    total: int  # bars in the series afterwards


def data_dir() -> Path:
    return Path(ktrdr_setting("DATA_DIR"))


def relative_path(symbol: str, timeframe: str) -> str:
    return f"{BARS_SUBDIR}/{symbol}_{timeframe}.parquet"


def series_path(symbol: str, timeframe: str) -> Path:
    return data_dir() / relative_path(symbol, timeframe)


def _canonical(symbol: str, timeframe: str) -> tuple[str, str]:
    return parse_symbol(symbol).symbol, get_timeframe(timeframe).name


def _read_file(path: Path) -> pd.DataFrame:
    table = pq.read_table(path)
    frame = table.to_pandas()
    return normalize(frame)


def _as_utc(value: object, field: str) -> pd.Timestamp | None:
    if value is None or value == "":
        return None
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{field} {value!r} is not a date or timestamp", field=field) from None
    if pd.isna(stamp):
        raise InvalidInput(f"{field} is not a date or timestamp", field=field)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def read_bars(symbol: str, timeframe: str, start=None, end=None) -> pd.DataFrame:
    """Stored bars with start ≤ timestamp < end; SeriesNotFound if there is no series.

    The frame has a UTC DatetimeIndex named "timestamp" and float64 open, high, low, close,
    volume columns, sorted, without duplicates.
    """
    symbol, timeframe = _canonical(symbol, timeframe)
    path = series_path(symbol, timeframe)
    if not path.exists():
        raise SeriesNotFound(symbol, timeframe)
    frame = _read_file(path)
    lo, hi = _as_utc(start, "start"), _as_utc(end, "end")
    if lo is not None or hi is not None:
        index = frame.index
        left = index.searchsorted(lo, side="left") if lo is not None else 0
        right = index.searchsorted(hi, side="left") if hi is not None else len(index)
        frame = frame.iloc[left:right]
    return frame


def read_index(symbol: str, timeframe: str) -> pd.DatetimeIndex:
    """Only the timestamps of a series (empty when nothing is stored)."""
    symbol, timeframe = _canonical(symbol, timeframe)
    path = series_path(symbol, timeframe)
    if not path.exists():
        return empty_bars().index
    column = pq.read_table(path, columns=["timestamp"]).column("timestamp").to_pandas()
    index = pd.DatetimeIndex(column, name="timestamp")
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    return index.as_unit("ns")


@contextlib.contextmanager
def series_lock(symbol: str, timeframe: str) -> Iterator[None]:
    path = series_path(symbol, timeframe)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path.with_suffix(".lock"), "a")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise StoreWriteError(disk_error_message("write bars to", path, exc)) from exc
    key = str(path)
    with _locks_guard:
        lock = _locks.setdefault(key, threading.Lock())
    with lock, handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class StoreWriteError(ServiceUnavailable):
    """The bar store cannot be written (disk full, read-only): 503, naming the path and cause.
    The series file is untouched: writes go to a temporary file that is then renamed."""


def _atomic_write(frame: pd.DataFrame, path: Path) -> int:
    table = pa.Table.from_pandas(frame, preserve_index=True)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise StoreWriteError(disk_error_message("write bars to", path, exc)) from exc
    tmp = Path(tmp_name)
    try:
        follow_umask(fd)
        with os.fdopen(fd, "wb") as handle:
            pq.write_table(table, handle, compression="zstd")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreWriteError(disk_error_message("write bars to", path, exc)) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path.stat().st_size


def write_bars(
    symbol: str,
    timeframe: str,
    df: pd.DataFrame,
    *,
    source: str,
    contract: dict | None = None,
):
    """Validate `df`, merge it into the stored series atomically and update its BarSeries row.

    Raises InvalidInput (field "bars") for a frame that breaks a bar rule; nothing is written
    then. Returns a WriteResult.
    """
    spec = parse_symbol(symbol)
    tf = get_timeframe(timeframe)
    try:
        new = validate_bars(df)
    except BarValidationError as exc:
        raise InvalidInput(
            f"bars for {spec.symbol} {tf.name} rejected: {exc}", field="bars"
        ) from None
    path = series_path(spec.symbol, tf.name)
    with series_lock(spec.symbol, tf.name):
        existing = _read_file(path) if path.exists() else empty_bars()
        if new.empty and existing.empty:
            return WriteResult(spec.symbol, tf.name, 0, 0, 0)
        merged = merge_bars(existing, new)
        added = len(merged) - len(existing)
        # Validate the union too: a corrected bar must still fit its neighbours' rules.
        merged = validate_bars(merged)
        size = _atomic_write(merged, path) if len(new) else path.stat().st_size
        bar_series_record(
            symbol=spec.symbol,
            timeframe=tf.name,
            asset_class=spec.asset_class,
            source=source,
            index=merged.index,
            file_path=relative_path(spec.symbol, tf.name),
            file_size=size,
            contract=contract,
        )
    logger.info(
        "%s %s: wrote %s bars (%s new, %s total)",
        spec.symbol,
        tf.name,
        len(new),
        added,
        len(merged),
    )
    return WriteResult(spec.symbol, tf.name, len(new), added, len(merged))


def delete_series_file(symbol: str, timeframe: str) -> None:
    series_path(symbol, timeframe).unlink(missing_ok=True)


def frame_to_bytes(frame: pd.DataFrame) -> bytes:
    """A bar frame as zstd-compressed Parquet bytes (how bars travel to and from agents)."""
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=True), buffer, compression="zstd")
    return buffer.getvalue()


def bytes_to_frame(data: bytes) -> pd.DataFrame:
    return pq.read_table(io.BytesIO(data)).to_pandas()


# --- the catalogue row of a series ------------------------------------------------------------
@transaction.atomic
def bar_series_record(
    *,
    symbol: str,
    timeframe: str,
    asset_class: str,
    source: str,
    index: pd.DatetimeIndex,
    file_path: str,
    file_size: int,
    contract: dict | None = None,
) -> BarSeries:
    """Create or update the catalogue row after the store wrote a series file."""
    tf = get_timeframe(timeframe)
    report = analyze_gaps(index, tf, asset_class)
    series, _ = BarSeries.objects.select_for_update().get_or_create(
        symbol=symbol,
        timeframe=tf.name,
        defaults={"source": source, "file_path": file_path, "asset_class": asset_class},
    )
    series.asset_class = asset_class
    series.source = source
    series.sources = sorted({*(series.sources or []), source})
    if contract:
        series.contract = contract
    series.first_timestamp = index[0].to_pydatetime() if len(index) else None
    series.last_timestamp = index[-1].to_pydatetime() if len(index) else None
    series.row_count = len(index)
    series.gap_summary = report.summary()
    series.file_path = file_path
    series.file_size = file_size
    series.save()
    return series
