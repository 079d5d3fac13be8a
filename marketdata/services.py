"""Every write of the marketdata app: data-load starts, CSV imports, demo seeding.

The catalogue row of a series is written by the store itself, with its file (`marketdata.store`).

Functions are keyword-only, validate all outside input and raise domain exceptions
(`InvalidInput` naming the field; `ServiceUnavailable` from the operations core when no place
can run an IB load).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from marketdata import store
from marketdata.conf import md_setting
from marketdata.csvparse import GZIP_MAGIC, CsvFormatError, gunzip_bounded, parse_bars_csv
from marketdata.models import BarSeries, BarSource
from marketdata.planner import MODES
from marketdata.symbols import SYNTHETIC_UNIVERSE, SymbolSpec, is_synthetic_symbol, parse_symbol
from marketdata.synthetic import first_day, generate_bars
from marketdata.timeframes import Timeframe, get_timeframe
from operations.exceptions import InvalidInput
from operations.execution import operation_submit
from operations.models import Operation
from operations.placement import EXECUTION_MODES

logger = logging.getLogger(__name__)

LOAD_SOURCES = ("synthetic", "ib")
DATA_LOAD_TYPE = "data_load"
# Default span of a load with no start, per timeframe (long enough to be useful, short enough
# to finish quickly against IB's pacing).
DEFAULT_SPANS = {
    "1m": timedelta(days=7),
    "5m": timedelta(days=30),
    "15m": timedelta(days=60),
    "30m": timedelta(days=90),
    "1h": timedelta(days=365),
    "4h": timedelta(days=730),
    "1d": timedelta(days=5 * 365),
}
MAX_SEGMENTS = 2000
FUTURE_TOLERANCE = timedelta(days=1)


# --- input parsing --------------------------------------------------------------------------
def parse_when(value: Any, field: str) -> datetime | None:
    """A date or datetime from outside (ISO string, date, datetime); naive means UTC."""
    if value is None or value == "":
        return None
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidInput(
            f"{field} {value!r} is not a date (YYYY-MM-DD) or an ISO-8601 timestamp", field=field
        ) from None
    if pd.isna(stamp):
        raise InvalidInput(f"{field} is not a date or timestamp", field=field)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def validate_range(
    *, start: Any, end: Any, timeframe: Timeframe, now: datetime | None = None
) -> tuple[datetime, datetime]:
    now = now or datetime.now(UTC)
    end_dt = parse_when(end, "end") or now
    start_dt = parse_when(start, "start") or end_dt - DEFAULT_SPANS[timeframe.name]
    if start_dt > now:
        raise InvalidInput(f"start {start_dt.isoformat()} is in the future", field="start")
    if end_dt > now + FUTURE_TOLERANCE:
        raise InvalidInput(
            f"end {end_dt.isoformat()} is in the future (at most one day ahead is accepted)",
            field="end",
        )
    if end_dt <= start_dt:
        raise InvalidInput(
            f"end {end_dt.isoformat()} is not after start {start_dt.isoformat()}", field="end"
        )
    if start_dt.year < 1970:
        raise InvalidInput("start must be after 1970", field="start")
    requests = (end_dt - start_dt) / timeframe.max_request_span
    if requests > MAX_SEGMENTS:
        raise InvalidInput(
            f"{timeframe.name} bars from {start_dt.date()} to {end_dt.date()} would take about "
            f"{int(requests)} IB requests (at most {MAX_SEGMENTS}); load a shorter range or a "
            "larger timeframe",
            field="start",
        )
    return start_dt, end_dt


def _choice(value: Any, choices: tuple[str, ...], field: str, default: str) -> str:
    if value is None or value == "":
        return default
    if not isinstance(value, str) or value.strip().lower() not in choices:
        raise InvalidInput(f"{field} {value!r} is not one of {', '.join(choices)}", field=field)
    return value.strip().lower()


# --- data loads -------------------------------------------------------------------------------
def validate_load_params(
    *,
    symbol: Any,
    timeframe: Any,
    start: Any = None,
    end: Any = None,
    mode: Any = "tail",
    source: Any = "synthetic",
    execution_mode: Any = "auto",
) -> dict[str, Any]:
    """Check every load parameter; returns the JSON-able metadata the worker runs from."""
    spec: SymbolSpec = parse_symbol(symbol)
    tf = get_timeframe(timeframe)

    if isinstance(source, str) and source.strip().lower() == "csv":
        raise InvalidInput(
            "CSV data is imported, not loaded: POST the file to /api/v1/data/imports/ or run "
            "manage.py import_bars FILE --symbol --timeframe",
            field="source",
        )
    source = _choice(source, LOAD_SOURCES, "source", "synthetic")
    mode = _choice(mode, MODES, "mode", "tail")
    execution_mode = _choice(execution_mode, EXECUTION_MODES, "execution_mode", "auto")
    start_dt, end_dt = validate_range(start=start, end=end, timeframe=tf)
    if source == "synthetic":
        if not is_synthetic_symbol(spec.symbol):
            raise InvalidInput(
                f"unknown symbol {spec.symbol}: the synthetic source has "
                f"{', '.join(sorted(SYNTHETIC_UNIVERSE))}",
                field="symbol",
            )

        head = datetime.combine(first_day(spec.symbol), datetime.min.time(), tzinfo=UTC)
        if end_dt <= head:
            raise InvalidInput(
                f"the range ends {end_dt.date()}, before the first data for {spec.symbol} "
                f"(head timestamp {head.date()})",
                field="end",
            )
    return {
        "symbol": spec.symbol,
        "timeframe": tf.name,
        "start": start_dt.isoformat(),
        "end": end_dt.isoformat(),
        "mode": mode,
        "source": source,
        "execution_mode": execution_mode,
        "asset_class": spec.asset_class,
        "contract": spec.contract_fields(),
    }


def data_load_start(
    *,
    symbol: Any,
    timeframe: Any,
    start: Any = None,
    end: Any = None,
    mode: Any = "tail",
    source: Any = "synthetic",
    user: Any = None,
    execution_mode: Any = "auto",
    detach: bool = False,
) -> Operation:
    """Validate a load and submit it as a `data_load` operation (`marketdata.kinds`); the
    operations core decides where it runs. Returns the Operation."""
    metadata = validate_load_params(
        symbol=symbol,
        timeframe=timeframe,
        start=start,
        end=end,
        mode=mode,
        source=source,
        execution_mode=execution_mode,
    )
    return operation_submit(
        operation_type=DATA_LOAD_TYPE,
        metadata=metadata,
        execution_mode=metadata["execution_mode"],
        user=user,
        input_series=[f"{metadata['symbol']}:{metadata['timeframe']}"],
        detach=detach,
    )


# --- CSV import ---------------------------------------------------------------------------------
def csv_upload_limit() -> int:
    """Most bytes a CSV may have, compressed or, once decompressed, as text."""
    return int(md_setting("CSV_UPLOAD_MAX_BYTES"))


def csv_upload_read(*, upload: Any) -> bytes:
    """The bytes of an uploaded file (a Django `UploadedFile`), refusing one over the limit by
    its size *before* reading it: what the client sent is already on disk or in memory, but a
    file over the limit is never read into this process's memory again."""
    limit = csv_upload_limit()
    name = getattr(upload, "name", None) or "upload.csv"
    size = getattr(upload, "size", None)
    if size is not None and size > limit:
        raise InvalidInput(f"{name} is {size:,} bytes; the limit is {limit:,}", field="file")
    # One byte past the limit is enough to know it is too large (a size that lied).
    return upload.read(limit + 1)


def bars_import_csv(
    *,
    data: bytes,
    symbol: Any,
    timeframe: Any,
    filename: str = "upload.csv",
    on_conflict: Any = "reject",
) -> store.WriteResult:
    """Parse a CSV (plain or gzip) and merge it into the store; InvalidInput naming `file` on a
    bad file.

    Bars that differ from stored ones at the same timestamps are refused unless asked
    (`on_conflict`: `reject`, the default, raises `store.BarsConflict`, a 409, naming how many
    and the first; `keep` keeps the stored bars; `replace` overwrites them). The result counts
    added, replaced, kept and unchanged bars and carries `warnings` (e.g. csv bars merged into
    a synthetic series).
    """

    spec = parse_symbol(symbol)
    tf = get_timeframe(timeframe)
    on_conflict = _choice(on_conflict, store.ON_CONFLICT, "on_conflict", "reject")
    limit = csv_upload_limit()
    if len(data) > limit:
        raise InvalidInput(
            f"{filename} is {len(data):,} bytes; the limit is {limit:,}", field="file"
        )
    try:
        if data.startswith(GZIP_MAGIC):
            data = gunzip_bounded(data, max_bytes=limit)
        frame = parse_bars_csv(data, timeframe=tf, asset_class=spec.asset_class)
    except CsvFormatError as exc:
        raise InvalidInput(f"{filename}: {exc}", field="file") from None
    future = frame.index > pd.Timestamp.now(tz="UTC") + pd.Timedelta(FUTURE_TOLERANCE)
    if future.any():
        raise InvalidInput(
            f"{filename}: {int(future.sum())} bar(s) are in the future, the first at "
            f"{frame.index[future.argmax()].isoformat()}",
            field="file",
        )
    try:
        result = store.write_bars(
            spec.symbol, tf.name, frame, source=BarSource.CSV, on_conflict=on_conflict
        )
    except store.BarsConflict as exc:
        raise store.BarsConflict(f"{filename}: {exc.message}", details=exc.details) from None
    logger.info("imported %s: %s bars into %s %s", filename, len(frame), spec.symbol, tf.name)
    return result


# --- demo data -------------------------------------------------------------------------------
DEMO_SERIES = (
    ("EURUSD", "1h", timedelta(days=730)),
    ("AAPL", "1d", timedelta(days=5 * 365)),
    ("AAPL", "1h", timedelta(days=365)),
    ("SPY", "1d", timedelta(days=5 * 365)),
)


def seed_demo_data(*, now: datetime | None = None) -> list[BarSeries]:
    """Synthetic series the demo uses; idempotent (existing series are kept as they are)."""

    # A fixed anchor (start of the current day) keeps repeated seeding within a day identical.
    now = (now or datetime.now(UTC)).replace(hour=0, minute=0, second=0, microsecond=0)
    seed = int(md_setting("SYNTHETIC_SEED"))
    result = []
    for symbol, timeframe, span in DEMO_SERIES:
        existing = BarSeries.objects.filter(symbol=symbol, timeframe=timeframe).first()
        if existing is not None and store.series_path(symbol, timeframe).exists():
            result.append(existing)
            continue
        frame = generate_bars(symbol, get_timeframe(timeframe), now - span, now, seed=seed)
        # Demo data never overwrites bars someone stored (a file without its row).
        store.write_bars(symbol, timeframe, frame, source=BarSource.SYNTHETIC, on_conflict="keep")
        result.append(BarSeries.objects.get(symbol=symbol, timeframe=timeframe))
    return result
