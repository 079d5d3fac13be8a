"""The bar store: one Parquet file per symbol x timeframe under DATA_DIR, plus its BarSeries row.

Guarantees:
* `write_bars` validates, then *merges* into what is stored (a ranged or partial write never
  drops bars outside its range), writes a temp file in the same directory, fsyncs it and renames
  it over the old one: readers see the old file or the new one, never a partial one.
* A stored bar is replaced only on purpose: incoming bars whose values differ from stored bars
  at the same timestamps are *conflicts*, and `on_conflict` says what happens to them —
  `reject` (the default: `BarsConflict`, a 409, nothing written), `keep` (the stored bars stay,
  only new timestamps are added) or `replace` (the incoming bars win; what loads use). Every
  write reports how many bars it added, replaced, kept and found unchanged.
* Provenance is kept per range on the BarSeries row (`provenance`: `{source, start, end, bars,
  at}` for every run of bars a write added or replaced), so where a bar came from is answerable
  (`selectors.bar_provenance`); merging a source into a series holding another one warns.
* Writers of one series are serialised (a thread lock plus an `flock` on a lock file, so two
  processes sharing a DATA_DIR also take turns).
* Reads decode only the bars they need: files are written in row groups of `ROW_GROUP_BARS`
  bars, aligned to the newest bar (the last group is always full), and a read picks the groups
  whose timestamp range (the footer's statistics) overlaps what it asks for. A process keeps
  the footers of the files it read (keyed by inode, mtime and size, so a rewritten file is
  never read with an old footer), so a viewer of the newest 2,000 bars of a 1M-bar series
  decodes one group of 4,096 bars (`read_window`).
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
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from django.db import transaction

from marketdata.bars import (
    COLUMNS,
    INDEX_NAME,
    BarValidationError,
    empty_bars,
    merge_bars,
    validate_bars,
)
from marketdata.gaps import analyze_gaps
from marketdata.models import BarSeries
from marketdata.symbols import parse_symbol
from marketdata.timeframes import get_timeframe
from operations.conf import ktrdr_setting
from operations.exceptions import Conflict, InvalidInput, NotFound, ServiceUnavailable
from operations.files import disk_error_message, follow_umask

logger = logging.getLogger(__name__)

BARS_SUBDIR = "bars"
ON_CONFLICT = ("reject", "keep", "replace")
# Bounds on the provenance a row keeps, so hostile writes cannot grow it without end: the runs
# one write records (beyond, one "scattered" range spanning them all) and the ranges kept (the
# newest ones).
MAX_RUNS_PER_WRITE = 20
MAX_PROVENANCE = 200
# Bars per Parquet row group: the unit a read decodes. Small enough that the newest 2,000 bars
# cost about what a 2,000-bar file does, large enough that a 1M-bar file's footer (one entry
# per group) stays small (docs/marketdata.md, reads).
ROW_GROUP_BARS = 4096
# Footers kept per process (`_footer`): one per series file a reader looked at recently.
FOOTER_CACHE_SIZE = 64
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


class SeriesNotFound(NotFound):
    """No bars are stored for this symbol and timeframe."""

    def __init__(self, symbol: str, timeframe: str) -> None:
        super().__init__(
            f"no bars stored for {symbol} {timeframe}",
            details={"symbol": symbol, "timeframe": timeframe},
        )


class BarsConflict(Conflict):
    """Incoming bars differ from stored bars at the same timestamps and `on_conflict` is
    `reject` (409); nothing was written."""


@dataclass(frozen=True)
class WriteResult:
    symbol: str
    timeframe: str
    bars_written: int  # bars in the frame given
    bars_added: int  # bars the series did not have before
    total: int  # bars in the series afterwards
    bars_replaced: int = 0  # stored bars overwritten by differing incoming ones
    bars_kept: int = 0  # differing incoming bars dropped, the stored ones kept (`keep`)
    bars_unchanged: int = 0  # incoming bars equal to the stored ones
    on_conflict: str = "reject"
    warnings: tuple[str, ...] = field(default=())
    # The other sources the series held when this write merged bars into it.
    other_sources: tuple[str, ...] = field(default=())

    @property
    def bars_conflicting(self) -> int:
        return self.bars_replaced + self.bars_kept


def data_dir() -> Path:
    return Path(ktrdr_setting("DATA_DIR"))


def relative_path(symbol: str, timeframe: str) -> str:
    return f"{BARS_SUBDIR}/{symbol}_{timeframe}.parquet"


def series_path(symbol: str, timeframe: str) -> Path:
    return data_dir() / relative_path(symbol, timeframe)


def _canonical(symbol: str, timeframe: str) -> tuple[str, str]:
    return parse_symbol(symbol).symbol, get_timeframe(timeframe).name


@dataclass(frozen=True)
class _Footer:
    """A file's Parquet footer and, per row group, its bar count and timestamp bounds (ns)."""

    metadata: pq.FileMetaData
    rows: np.ndarray
    first: np.ndarray
    last: np.ndarray


_footers: OrderedDict[tuple[int, int, int, int], _Footer] = OrderedDict()
_footers_guard = threading.Lock()
_NS_PER = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def _footer_of(metadata: pq.FileMetaData) -> _Footer:
    schema = metadata.schema.to_arrow_schema()
    position = schema.get_field_index(INDEX_NAME)
    unit = _NS_PER.get(getattr(schema.field(position).type, "unit", "ns"), 1)
    groups = metadata.num_row_groups
    rows = np.zeros(groups, dtype=np.int64)
    # Without statistics a group may hold any timestamp: it is always read.
    first = np.full(groups, np.iinfo(np.int64).min, dtype=np.int64)
    last = np.full(groups, np.iinfo(np.int64).max, dtype=np.int64)
    for g in range(groups):
        group = metadata.row_group(g)
        rows[g] = group.num_rows
        stats = group.column(position).statistics
        if stats is not None and stats.has_min_max:
            first[g] = int(stats.min_raw) * unit
            last[g] = int(stats.max_raw) * unit
    return _Footer(metadata, rows, first, last)


def _footer(handle: io.BufferedReader) -> _Footer:
    """The footer of the open file, parsed once per version of the file: the key is what the
    open handle itself is (device, inode, mtime, size), so a file renamed over it (every write)
    is a new key and a reader never pairs one file's footer with another's bytes."""
    st = os.fstat(handle.fileno())
    key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
    with _footers_guard:
        cached = _footers.get(key)
        if cached is not None:
            _footers.move_to_end(key)
            return cached
    footer = _footer_of(pq.ParquetFile(handle).metadata)
    with _footers_guard:
        _footers[key] = footer
        while len(_footers) > FOOTER_CACHE_SIZE:
            _footers.popitem(last=False)
    return footer


def _frame_of(table: pa.Table) -> pd.DataFrame:
    """A bar frame straight from the Arrow columns (no pandas-metadata round trip)."""
    stamps = table.column(INDEX_NAME).to_numpy()
    index = pd.DatetimeIndex(stamps, name=INDEX_NAME)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    columns = {c: np.asarray(table.column(c).to_numpy(), dtype="float64") for c in COLUMNS}
    return pd.DataFrame(columns, index=index.as_unit("ns"))


def _ns(table: pa.Table) -> np.ndarray:
    """The table's timestamps as int64 nanoseconds (whatever unit the file stores)."""
    return table.column(INDEX_NAME).to_numpy().astype("datetime64[ns]").view("int64")


def _count_in(table: pa.Table, lo: int, hi: int) -> int:
    stamps = _ns(table)
    return int(np.searchsorted(stamps, hi, side="left") - np.searchsorted(stamps, lo, side="left"))


def _read_range(
    path: Path, lo: int | None, hi: int | None, limit: int | None = None
) -> tuple[pd.DataFrame, int]:
    """Bars with lo ≤ t < hi (ns; None: unbounded), the newest `limit` of them when given, and
    how many the range holds. Decodes only the row groups the answer needs: from the newest
    overlapping group back until `limit` bars are held; the count of the older ones comes
    from the footer (a group wholly inside the range) or their timestamp column alone (the
    one group that straddles `lo`)."""
    lo = np.iinfo(np.int64).min if lo is None else lo
    hi = np.iinfo(np.int64).max if hi is None else hi
    with open(path, "rb") as handle:
        footer = _footer(handle)
        parquet = pq.ParquetFile(handle, metadata=footer.metadata)
        overlapping = np.flatnonzero((footer.last >= lo) & (footer.first < hi))
        if not len(overlapping):
            return empty_bars(), 0
        inside = (footer.first >= lo) & (footer.last < hi)
        columns = [*COLUMNS, INDEX_NAME]
        if limit is None:
            # Everything in range: one read of all the overlapping groups.
            table = parquet.read_row_groups(
                [int(g) for g in overlapping], columns=columns, use_threads=False
            )
            frame = _frame_of(table)
            values = frame.index.asi8
            frame = frame.iloc[np.searchsorted(values, lo) : np.searchsorted(values, hi)]
            return frame, len(frame)
        tables: list[pa.Table] = []
        held = 0
        g = len(overlapping)
        while g and held < limit:
            g -= 1
            group = int(overlapping[g])
            table = parquet.read_row_group(group, columns=columns, use_threads=False)
            tables.append(table)
            if inside[group]:
                held += int(footer.rows[group])
            else:
                held += _count_in(table, lo, hi)
        total = held
        for group in overlapping[:g]:
            if inside[group]:
                total += int(footer.rows[group])
            else:
                stamps = parquet.read_row_group(int(group), columns=[INDEX_NAME], use_threads=False)
                total += _count_in(stamps, lo, hi)
    frame = _frame_of(pa.concat_tables(tables[::-1]) if len(tables) > 1 else tables[0])
    values = frame.index.asi8
    frame = frame.iloc[np.searchsorted(values, lo) : np.searchsorted(values, hi)]
    if len(frame) > limit:
        frame = frame.iloc[len(frame) - limit :]
    return frame, total


def _read_file(path: Path) -> pd.DataFrame:
    return _read_range(path, None, None)[0]


def parse_bound(value: object, field: str) -> pd.Timestamp | None:
    """A range bound as a UTC timestamp (None for none); InvalidInput naming `field` if it is
    not a date or timestamp."""
    return _as_utc(value, field)


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


def _bounds(start: object, end: object) -> tuple[int | None, int | None]:
    lo, hi = _as_utc(start, "start"), _as_utc(end, "end")
    return (None if lo is None else lo.value), (None if hi is None else hi.value)


def read_bars(symbol: str, timeframe: str, start=None, end=None) -> pd.DataFrame:
    """Stored bars with start ≤ timestamp < end; SeriesNotFound if there is no series.

    The frame has a UTC DatetimeIndex named "timestamp" and float64 open, high, low, close,
    volume columns, sorted, without duplicates. Only the row groups overlapping the range are
    decoded.
    """
    symbol, timeframe = _canonical(symbol, timeframe)
    path = series_path(symbol, timeframe)
    lo, hi = _bounds(start, end)
    try:
        return _read_range(path, lo, hi)[0]
    except FileNotFoundError:
        raise SeriesNotFound(symbol, timeframe) from None


def read_window(
    symbol: str, timeframe: str, start=None, end=None, *, limit: int
) -> tuple[pd.DataFrame, int]:
    """The newest `limit` stored bars with start ≤ timestamp < end, and how many bars the range
    holds; SeriesNotFound if there is no series. Decodes the row groups of those `limit` bars
    (plus, for the count, at most one group's timestamps), whatever the size of the series:
    what a page or an API answer of a window costs does not grow with the file."""
    symbol, timeframe = _canonical(symbol, timeframe)
    path = series_path(symbol, timeframe)
    lo, hi = _bounds(start, end)
    try:
        return _read_range(path, lo, hi, limit)
    except FileNotFoundError:
        raise SeriesNotFound(symbol, timeframe) from None


def read_index(symbol: str, timeframe: str) -> pd.DatetimeIndex:
    """Only the timestamps of a series (empty when nothing is stored)."""
    symbol, timeframe = _canonical(symbol, timeframe)
    path = series_path(symbol, timeframe)
    try:
        with open(path, "rb") as handle:
            footer = _footer(handle)
            table = pq.ParquetFile(handle, metadata=footer.metadata).read(
                columns=[INDEX_NAME], use_threads=False
            )
    except FileNotFoundError:
        return empty_bars().index
    index = pd.DatetimeIndex(table.column(INDEX_NAME).to_numpy(), name=INDEX_NAME)
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


def _write_groups(table: pa.Table, handle: Any) -> None:
    """The table as Parquet row groups of ROW_GROUP_BARS bars aligned to its *end*: the first
    group takes the remainder, so the newest bars — what pages show — fill one whole group.
    Statistics are kept for the timestamp only: they are what reads select groups by, and the
    footer stays small."""
    rows = table.num_rows
    # Prices and volumes split into byte streams, timestamps (one step apart, mostly) as
    # deltas: with zstd both compress well in small groups and decode fast.
    encodings = {**dict.fromkeys(COLUMNS, "BYTE_STREAM_SPLIT"), INDEX_NAME: "DELTA_BINARY_PACKED"}
    with pq.ParquetWriter(
        handle,
        table.schema,
        compression="zstd",
        use_dictionary=False,
        column_encoding=encodings,
        write_statistics=[INDEX_NAME],
    ) as writer:
        offset = rows % ROW_GROUP_BARS
        if offset or not rows:
            writer.write_table(table.slice(0, offset), row_group_size=ROW_GROUP_BARS)
        while offset < rows:
            writer.write_table(table.slice(offset, ROW_GROUP_BARS), row_group_size=ROW_GROUP_BARS)
            offset += ROW_GROUP_BARS


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
            _write_groups(table, handle)
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


def mixing_warning(others: list[str] | tuple[str, ...], source: str, added: int, replaced: int):
    """The warning of a write that merged `source` bars into a series holding other sources."""
    return (
        f"this series holds {', '.join(others)} bars; {added + replaced} {source} bars were "
        f"merged in ({added} added, {replaced} replaced)"
    )


def _describe_bar(frame: pd.DataFrame, at: pd.Timestamp) -> str:
    row = frame.loc[at]
    return ", ".join(f"{col} {row[col]:g}" for col in frame.columns)


def _runs(positions: np.ndarray) -> list[tuple[int, int]]:
    """Runs of consecutive positions as (first, last) pairs; `positions` sorted ascending."""
    if not len(positions):
        return []
    breaks = np.flatnonzero(np.diff(positions) != 1)
    firsts = np.concatenate([[positions[0]], positions[breaks + 1]])
    lasts = np.concatenate([positions[breaks], [positions[-1]]])
    return [(int(a), int(b)) for a, b in zip(firsts, lasts, strict=True)]


def _provenance(
    prior: list[dict[str, Any]],
    written: pd.DatetimeIndex,
    merged: pd.DatetimeIndex,
    source: str,
    at: str,
) -> list[dict[str, Any]]:
    """The row's provenance after a write: one range per run of bars the write added or
    replaced (consecutive in the stored series), merged into the newest range when that one
    has the same source and touches it (tail loads stay one range)."""
    entries = [dict(e) for e in prior if isinstance(e, dict)]
    positions = merged.get_indexer(written)
    runs = _runs(positions)
    scattered = len(runs) > MAX_RUNS_PER_WRITE
    if scattered:
        runs = [(runs[0][0], runs[-1][1])]
    for first, last in runs:
        bars = len(written) if scattered else last - first + 1
        entry = {
            "source": source,
            "start": merged[first].isoformat(),
            "end": merged[last].isoformat(),
            "bars": bars,
            "at": at,
        }
        if scattered:
            # Its bars lie between older ones: the span is not all this write's.
            entry["scattered"] = True
        newest = entries[-1] if entries else None
        if (
            newest is not None
            and newest.get("source") == source
            and not scattered
            and not newest.get("scattered")
        ):
            lo = merged.get_indexer([pd.Timestamp(newest["start"])])[0]
            hi = merged.get_indexer([pd.Timestamp(newest["end"])])[0]
            if lo >= 0 and hi >= 0 and first <= hi + 1 and last >= lo - 1:
                lo, hi = min(lo, first), max(hi, last)
                # Every bar between lo and hi is from one of the two writes (the newest range
                # was one run, and nothing was written after it).
                newest.update(
                    start=merged[lo].isoformat(),
                    end=merged[hi].isoformat(),
                    bars=int(hi - lo + 1),
                    at=at,
                )
                continue
        entries.append(entry)
    return entries[-MAX_PROVENANCE:]


def write_bars(
    symbol: str,
    timeframe: str,
    df: pd.DataFrame,
    *,
    source: str,
    contract: dict | None = None,
    on_conflict: str = "reject",
) -> WriteResult:
    """Validate `df`, merge it into the stored series atomically and update its BarSeries row.

    `on_conflict` decides about incoming bars that differ from stored bars at the same
    timestamps: `reject` raises BarsConflict (409) naming how many and the first; `keep` keeps
    the stored bars; `replace` overwrites them. Raises InvalidInput (field "bars") for a frame
    that breaks a bar rule. Nothing is written on a refusal. Returns a WriteResult.
    """
    spec = parse_symbol(symbol)
    tf = get_timeframe(timeframe)
    if on_conflict not in ON_CONFLICT:
        raise InvalidInput(
            f"on_conflict {on_conflict!r} is not one of {', '.join(ON_CONFLICT)}",
            field="on_conflict",
        )
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
            return WriteResult(spec.symbol, tf.name, 0, 0, 0, on_conflict=on_conflict)
        where = existing.index.get_indexer(new.index)
        stored = where >= 0
        same = np.zeros(len(new), dtype=bool)
        if stored.any():
            same[stored] = (existing.to_numpy()[where[stored]] == new.to_numpy()[stored]).all(
                axis=1
            )
        differs = stored & ~same
        conflicts = int(differs.sum())
        if conflicts and on_conflict == "reject":
            first = new.index[int(np.flatnonzero(differs)[0])]
            message = (
                f"{conflicts} incoming bar(s) differ from the bars stored for {spec.symbol} "
                f"{tf.name} at the same timestamps, the first at {first.isoformat()} (stored: "
                f"{_describe_bar(existing, first)}; incoming: {_describe_bar(new, first)}); "
                "nothing was written. Choose on_conflict=keep to keep the stored bars and add "
                "only new ones, or on_conflict=replace to overwrite them"
            )
            raise BarsConflict(
                message,
                details={
                    "on_conflict": [message],
                    "conflicting_bars": conflicts,
                    "first_conflict": first.isoformat(),
                },
            )
        take = ~stored | (differs if on_conflict == "replace" else np.zeros(len(new), bool))
        written = new[take]
        added = int((~stored).sum())
        replaced = conflicts if on_conflict == "replace" else 0
        kept = conflicts - replaced
        prior = BarSeries.objects.filter(symbol=spec.symbol, timeframe=tf.name).first()
        warnings: list[str] = []
        others: list[str] = []
        if len(written):
            if existing.empty:
                merged = written  # validated above; nothing to merge with
            else:
                merged = merge_bars(existing, written)
                # Validate the union too: a corrected bar must still fit its neighbours' rules.
                merged = validate_bars(merged)
            size = _atomic_write(merged, path)
            others = sorted(set(prior.sources or []) - {source}) if prior else []
            if others and len(existing):
                warnings.append(mixing_warning(others, source, added, replaced))
            provenance = _provenance(
                prior.provenance if prior else [],
                written.index,
                merged.index,
                source,
                datetime.now(UTC).isoformat(),
            )
        else:
            merged = existing
            size = path.stat().st_size
            provenance = None
        # A write that changed nothing leaves the row alone (its source, sources, updated_at)
        # unless there is none yet.
        if len(written) or prior is None:
            bar_series_record(
                symbol=spec.symbol,
                timeframe=tf.name,
                asset_class=spec.asset_class,
                source=source,
                index=merged.index,
                file_path=relative_path(spec.symbol, tf.name),
                file_size=size,
                contract=contract,
                provenance=provenance,
            )
    logger.info(
        "%s %s: %s bars from %s (%s added, %s replaced, %s kept, %s unchanged; %s total)",
        spec.symbol,
        tf.name,
        len(new),
        source,
        added,
        replaced,
        kept,
        int(same.sum()),
        len(merged),
    )
    return WriteResult(
        spec.symbol,
        tf.name,
        len(new),
        added,
        len(merged),
        bars_replaced=replaced,
        bars_kept=kept,
        bars_unchanged=int(same.sum()),
        on_conflict=on_conflict,
        warnings=tuple(warnings),
        other_sources=tuple(others) if warnings else (),
    )


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
    provenance: list[dict[str, Any]] | None = None,
) -> BarSeries:
    """Create or update the catalogue row after the store wrote a series file; `provenance`,
    when given, replaces the row's list of ranges (`write_bars` computes it)."""
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
    if provenance is not None:
        series.provenance = provenance
    series.first_timestamp = index[0].to_pydatetime() if len(index) else None
    series.last_timestamp = index[-1].to_pydatetime() if len(index) else None
    series.row_count = len(index)
    series.gap_summary = report.summary()
    series.file_path = file_path
    series.file_size = file_size
    series.save()
    return series
