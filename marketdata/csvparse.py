"""Reading bar CSVs people actually have, and refusing the rest with a message that says where.

Recognised (pure pandas, no Django):
* a header with a timestamp column (`timestamp`, `time`, `date`, `datetime`, `Gmt time`, …) or
  separate date and time columns (`Date` + `Time`, MetaTrader's `<DATE>` + `<TIME>`);
* timestamps as ISO-8601 (with `Z` or an offset; naive ones are taken as UTC), `YYYYMMDD`,
  `YYYYMMDD HH:MM[:SS]`, `DD.MM.YYYY HH:MM:SS.fff`, or epoch seconds/milliseconds;
* price columns by common names (`open`/`o`/`Open`, …, `Adj Close` only when there is no close)
  and an optional volume column (`volume`, `vol`, `tickvol`, …; missing → 0);
* no header at all when the first column is a timestamp followed by open, high, low, close
  [, volume] (LEAN's layout);
* comma, semicolon or tab separators;
* gzip-compressed files (recognised by their magic bytes), decompressed in chunks up to a cap.

Everything else raises `CsvFormatError` naming the problem and the line (1-based, header = 1),
among it timestamps outside 1900-2200 (pandas cannot hold years before 1677 or after 2262; a
file like that is a mistake, never a 500) and timestamps off the timeframe's grid.
"""

from __future__ import annotations

import csv
import io
import re
import zlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from marketdata.bars import COLUMNS, INDEX_NAME
from marketdata.timeframes import Timeframe

MAX_ROWS = 5_000_000
GZIP_MAGIC = b"\x1f\x8b"
_GZIP_CHUNK = 1 << 20
# Bars outside these years are refused: older or later dates are typos or wrong units.
EARLIEST = pd.Timestamp("1900-01-01", tz="UTC")
LATEST = pd.Timestamp("2200-01-01", tz="UTC")

_EIGHT_DIGITS = re.compile(r"\d{8}")
_LEADING_WINDOW = 1 << 16
_TIMESTAMP_NAMES = ("timestamp", "datetime", "date_time", "time", "date", "gmt time",
                    "local time", "utc", "<date>")  # fmt: skip
_DATE_NAMES = ("date", "<date>", "day")
_TIME_NAMES = ("time", "<time>", "hour")
_COLUMN_NAMES = {
    "open": ("open", "o", "<open>", "open price", "bidopen"),
    "high": ("high", "h", "<high>", "high price", "bidhigh"),
    "low": ("low", "l", "<low>", "low price", "bidlow"),
    "close": ("close", "c", "<close>", "close price", "last", "bidclose", "adj close",
              "adj_close"),
    "volume": ("volume", "vol", "v", "<vol>", "<tickvol>", "tickvol", "tick volume",
               "tick_volume", "<volume>"),
}  # fmt: skip


class CsvFormatError(ValueError):
    """The file cannot be read as bars; the message says what is wrong and where."""


def _norm(name: str) -> str:
    return re.sub(r"\s+", " ", str(name).strip().lower())


def _sniff_separator(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t").delimiter
    except csv.Error:
        return ","


def _looks_like_timestamp(value: str) -> bool:
    value = value.strip()
    if re.fullmatch(r"\d{9,13}(\.\d+)?", value):
        return True
    return bool(re.match(r"^\d{4}[-/.]?\d{2}[-/.]?\d{2}|^\d{2}\.\d{2}\.\d{4}", value))


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _first_line(text: str) -> str:
    """`text.lstrip().splitlines()[0]` without copying or splitting the whole file."""
    begin = 0
    if text[:1].isspace():
        head = text[:_LEADING_WINDOW]
        begin = len(head) - len(head.lstrip())
        if begin == len(head):
            begin = len(text) - len(text.lstrip())
    window = text[begin : begin + _LEADING_WINDOW]
    lines = window.splitlines()
    if len(lines) > 1 or len(window) < _LEADING_WINDOW:
        return lines[0]
    return text[begin:].splitlines()[0]


def _iso_with_zone(text: pd.Series) -> pd.DatetimeIndex | None:
    """ISO-8601 timestamps that all name their zone (`Z`, `+01:00`), read by Arrow's parser
    (about ten times pandas' speed); None when any one does not (a naive stamp, another
    layout, a year nanoseconds cannot hold): pandas' parsers then decide, and name the line."""
    try:
        stamps = pc.cast(pa.array(text.array), pa.timestamp("ns", tz="UTC"))
    except (pa.ArrowException, TypeError, ValueError):
        return None
    return pd.DatetimeIndex(stamps.to_pandas())


def _numeric_sample(value: str) -> bool:
    """Whether `pd.to_numeric` reads `value` (the same parser the whole column then goes
    through, so the sample decides exactly as reading every value would)."""
    return bool(pd.notna(pd.to_numeric(pd.Series([value]), errors="coerce")).all())


def _parse_times(values: pd.Series, first_line: int) -> pd.DatetimeIndex:
    """Timestamps from text, each format tried on the whole column at once (vectorised).

    The first value picks the candidates: only when it has eight digits can the column be
    `YYYYMMDD`, only when it is a number can the column be epoch seconds/milliseconds, so the
    costly whole-column tests run only for a column that may pass them.
    """
    text = values.astype(str).str.strip()
    sample = text.iloc[0]
    if _EIGHT_DIGITS.fullmatch(sample) and text.str.fullmatch(r"\d{8}").all():
        # Eight digits are always YYYYMMDD, never epoch seconds (those would be 1970-1973):
        # `15000106` is 1500-01-06 and refused as such below, not read as a 1970 instant.
        parsed = pd.to_datetime(text, format="%Y%m%d", utc=True, errors="coerce")
    elif (
        _numeric_sample(sample) and (numeric := pd.to_numeric(text, errors="coerce")).notna().all()
    ):
        unit = "ms" if numeric.abs().max() > 1e11 else "s"
        parsed = pd.to_datetime(numeric, unit=unit, utc=True, errors="coerce")
    else:
        parsed = None
        for fmt in ("%Y%m%d %H:%M:%S", "%Y%m%d %H:%M", "%d.%m.%Y %H:%M:%S.%f",
                    "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M"):  # fmt: skip
            try:
                pd.to_datetime(sample, format=fmt)
            except (ValueError, TypeError):
                continue
            parsed = pd.to_datetime(text, format=fmt, utc=True, errors="coerce")
            break
        if parsed is None:
            parsed = _iso_with_zone(text)
        if parsed is None:
            parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
            if parsed.isna().any():
                parsed = pd.to_datetime(text, utc=True, errors="coerce", format="mixed")
    parsed = pd.DatetimeIndex(parsed)
    bad = np.flatnonzero(pd.isna(parsed))
    if len(bad):
        i = int(bad[0])
        raise CsvFormatError(
            f"line {first_line + i}: cannot read timestamp {text.iloc[i]!r} "
            f"({len(bad)} unreadable timestamp(s) in the file)"
        )
    # Checked before the conversion to nanoseconds, which cannot hold years outside 1677-2262.
    outside = np.flatnonzero((parsed < EARLIEST) | (parsed >= LATEST))
    if len(outside):
        i = int(outside[0])
        raise CsvFormatError(
            f"line {first_line + i}: timestamp {text.iloc[i]!r} is {parsed[i].isoformat()}, "
            f"outside the years {EARLIEST.year}-{LATEST.year - 1} that bars may have "
            f"({len(outside)} such line(s))"
        )
    return parsed.as_unit("ns")


def _find(columns: list[str], names: tuple[str, ...]) -> str | None:
    for name in names:
        if name in columns:
            return name
    return None


def gunzip_bounded(data: bytes, *, max_bytes: int) -> bytes:
    """The decompressed bytes of a gzip file, refusing (CsvFormatError) once past `max_bytes`.

    Decompressed in chunks of at most 1 MiB of output, so a gzip bomb costs at most `max_bytes`
    of memory before it is refused, whatever it would expand to. Concatenated members are read.
    """
    out = bytearray()
    rest = data
    while rest:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        pending = rest
        try:
            while not inflater.eof:
                chunk = inflater.decompress(pending, min(_GZIP_CHUNK, max_bytes + 1 - len(out)))
                out += chunk
                if len(out) > max_bytes:
                    raise CsvFormatError(
                        f"decompressed, the file is more than {max_bytes:,} bytes; the limit "
                        f"is {max_bytes:,}"
                    )
                pending = inflater.unconsumed_tail
                if not chunk and not pending:
                    raise CsvFormatError("the gzip file is cut short (truncated)")
        except zlib.error as exc:
            raise CsvFormatError(f"not a readable gzip file: {exc}") from None
        rest = inflater.unused_data
        if rest and not rest.startswith(GZIP_MAGIC):
            break  # trailing padding after the last member, as gzip(1) ignores it
    return bytes(out)


def grid_step(timeframe: Timeframe, asset_class: str | None = None) -> timedelta:
    """The spacing from the epoch every bar start of `timeframe` lies on.

    The bar size up to 30 minutes. Beyond it half hours (equity sessions open at 09:30 New
    York, `marketdata.calendar`), or whole hours for forex (its bars and its trading day roll
    on the hour; 4h and daily FX bars often start at 21:00 or 22:00 UTC, not on a 4h or
    midnight grid).
    """
    coarsest = timedelta(hours=1) if asset_class == "forex" else timedelta(minutes=30)
    return min(timeframe.step, coarsest)


@dataclass(frozen=True)
class _Layout:
    """Where the bars are in a read CSV: the timestamp column(s) and the price/volume columns
    (labels of the read frame; volume None when the file has none)."""

    stamps: tuple[Any, ...]
    picked: dict[str, Any]


def _layout(raw: pd.DataFrame, has_header: bool) -> _Layout:
    if has_header:
        cols = list(raw.columns)
        date_col = _find(cols, _DATE_NAMES)
        time_col = _find(cols, _TIME_NAMES)
        if date_col and time_col and date_col != time_col:
            stamps: tuple[Any, ...] = (date_col, time_col)
        else:
            ts_col = _find(cols, _TIMESTAMP_NAMES)
            if ts_col is None:
                raise CsvFormatError(
                    "line 1: no timestamp column; expected one named timestamp, time, date or "
                    f"datetime (or date + time columns); found: {', '.join(cols)}"
                )
            stamps = (ts_col,)
        picked = {}
        for col, names in _COLUMN_NAMES.items():
            found = _find(cols, names)
            if found is None and col != "volume":
                raise CsvFormatError(
                    f"line 1: no {col} column; expected one of {', '.join(names[:3])}; "
                    f"found: {', '.join(cols)}"
                )
            picked[col] = found
        return _Layout(stamps, picked)
    if raw.shape[1] < 5:
        raise CsvFormatError(
            "line 1: without a header the columns must be timestamp, open, high, low, "
            f"close[, volume]; found {raw.shape[1]} column(s)"
        )
    picked = {"open": 1, "high": 2, "low": 3, "close": 4, "volume": 5 if raw.shape[1] > 5
              else None}  # fmt: skip
    return _Layout((0,), picked)


def _read(source: bytes, sep: str, has_header: bool, **kwargs: Any) -> pd.DataFrame:
    try:
        raw = pd.read_csv(
            io.BytesIO(source),
            sep=sep,
            header=0 if has_header else None,
            encoding="utf-8-sig",
            skipinitialspace=True,
            nrows=MAX_ROWS + 1,
            **kwargs,
        )
    except (pd.errors.ParserError, ValueError) as exc:
        raise CsvFormatError(f"not a readable CSV: {exc}") from None
    if len(raw) > MAX_ROWS:
        raise CsvFormatError(f"too many rows: at most {MAX_ROWS:,} bars per file")
    if raw.empty:
        raise CsvFormatError("the file has a header but no rows")
    if has_header:
        raw.columns = [_norm(c) for c in raw.columns]
    return raw


def _stamp_text(raw: pd.DataFrame, layout: _Layout) -> pd.Series:
    if len(layout.stamps) == 2:
        date_col, time_col = layout.stamps
        return raw[date_col].str.strip() + " " + raw[time_col].str.strip()
    return raw[layout.stamps[0]]


def _is_text(column: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(column.dtype) and not column.isna().any()


def parse_bars_csv(
    data: bytes | str, *, timeframe: Timeframe | None = None, asset_class: str | None = None
) -> pd.DataFrame:
    """Parse a CSV into a bar frame, or raise CsvFormatError saying what and where.

    `data` is text or bytes (UTF-8, or gzip, which must already be decompressed with
    `gunzip_bounded` to bound it). With a timeframe, bar spacing and the grid are checked;
    `asset_class` picks the grid (`grid_step`).

    One read with the types pandas infers (numbers parsed in C, as `pd.read_csv` of the file
    alone does) serves every file whose prices and volumes are all numbers. Timestamps pandas
    read as numbers (epochs, `YYYYMMDD`, where the text decides) are read again as text, alone.
    A file with an empty or non-numeric cell is read again with every cell as text: the strict
    path that names the offending line and field, so a bad file is refused exactly as before
    and only a good one is fast. Timestamps are parsed a whole column per format
    (`_parse_times`), every row rule is a vectorised mask (`_check_rows`).
    """
    if isinstance(data, bytes) and data.startswith(GZIP_MAGIC):
        raise CsvFormatError("the file is gzip-compressed; decompress it first")
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise CsvFormatError(
                f"the file is not UTF-8 text (byte {exc.start}); export it as CSV text"
            ) from None
        source = data
    else:
        text = data
        source = data.encode("utf-8")
    if not text or text.isspace():
        raise CsvFormatError("the file is empty")
    sep = _sniff_separator(text[:4096])
    first_line = _first_line(text)
    first_fields = [f.strip() for f in first_line.split(sep)]
    has_header = not (
        _looks_like_timestamp(first_fields[0])
        and all(_is_number(f) for f in first_fields[1:5] if f)
    )
    data_line = 2 if has_header else 1
    raw = _read(source, sep, has_header)
    layout = _layout(raw, has_header)
    columns = _fast_columns(raw, layout)
    stamps = raw
    if columns is None:
        # The strict path: every cell as text, exactly as written (no NA guessing).
        raw = stamps = _read(source, sep, has_header, dtype=str, keep_default_na=False)
        layout = _layout(raw, has_header)
    elif not all(_is_text(raw[c]) for c in layout.stamps):
        # The numbers are fine but the timestamps were read as numbers (epochs, YYYYMMDD) or
        # have gaps: their text decides (eight digits are a date), so only they are read again.
        positions = [list(raw.columns).index(c) for c in layout.stamps]
        stamps = _read(source, sep, has_header, usecols=positions, dtype=str, keep_default_na=False)
    index = _parse_times(_stamp_text(stamps, layout), data_line)
    if columns is None:
        columns = _strict_columns(raw, layout, data_line)
    frame = pd.DataFrame(columns, index=index)
    frame.index.name = INDEX_NAME
    _check_rows(frame, data_line, timeframe, asset_class)
    return frame


def _fast_columns(raw: pd.DataFrame, layout: _Layout) -> dict[str, np.ndarray] | None:
    """The price/volume columns as float64 when pandas read every one of them as numbers
    without a gap; None sends the file to the strict path (which names the bad cell)."""
    columns = {}
    for col in COLUMNS:
        label = layout.picked[col]
        if label is None:
            columns[col] = np.zeros(len(raw))
            continue
        series = raw[label]
        if series.dtype.kind not in "iuf":
            return None
        values = series.to_numpy(dtype="float64")
        if np.isnan(values).any():
            return None
        columns[col] = values
    return columns


def _strict_columns(raw: pd.DataFrame, layout: _Layout, data_line: int) -> dict[str, np.ndarray]:
    columns = {}
    for col in COLUMNS:
        label = layout.picked[col]
        if label is None:
            columns[col] = np.zeros(len(raw))
            continue
        values = pd.to_numeric(raw[label].astype(str).str.strip(), errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy())
        if len(bad):
            i = int(bad[0])
            raise CsvFormatError(
                f"line {data_line + i}: {col} value {raw[label].iloc[i]!r} is not a number"
            )
        columns[col] = values.to_numpy(dtype="float64")
    return columns


def _human(nanoseconds: int) -> str:
    seconds = nanoseconds / 1e9
    for unit, size in (("day", 86_400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            amount = seconds / size
            text = f"{amount:g}" if amount != int(amount) else str(int(amount))
            return f"{text} {unit}{'' if amount == 1 else 's'}"
    return f"{seconds:g} seconds"


def _check_rows(
    frame: pd.DataFrame, first_line: int, timeframe: Timeframe | None, asset_class: str | None
) -> None:
    """Row rules with line numbers (the store re-validates without them)."""
    ts = frame.index.asi8
    if len(ts) > 1:
        diffs = np.diff(ts)
        for mask, what in ((diffs == 0, "duplicate timestamp"),
                           (diffs < 0, "timestamp earlier than the line before")):  # fmt: skip
            hits = np.flatnonzero(mask)
            if len(hits):
                i = int(hits[0]) + 1
                raise CsvFormatError(
                    f"line {first_line + i}: {what} {frame.index[i].isoformat()} "
                    f"({len(hits)} such line(s); rows must be sorted, one per timestamp)"
                )
    o, h, low, c, v = (frame[col].to_numpy() for col in COLUMNS)
    checks = (
        (~np.isfinite(frame.to_numpy()).all(axis=1), "a value is not finite"),
        ((o <= 0) | (h <= 0) | (low <= 0) | (c <= 0), "a price is zero or negative"),
        (h < np.maximum(o, c), "high is below max(open, close)"),
        (low > np.minimum(o, c), "low is above min(open, close)"),
        (v < 0, "volume is negative"),
    )
    for mask, what in checks:
        hits = np.flatnonzero(mask)
        if len(hits):
            i = int(hits[0])
            row = frame.iloc[i]
            raise CsvFormatError(
                f"line {first_line + i}: {what} (open={row.open}, high={row.high}, "
                f"low={row.low}, close={row.close}, volume={row.volume}; "
                f"{len(hits)} such line(s))"
            )
    if timeframe is None:
        return
    # From two bars on: two bars are enough to be too close together for the timeframe.
    if len(ts) >= 2:
        step_ns = int(timeframe.step.total_seconds() * 1e9)
        smallest = int(np.diff(ts).min())
        # Bars can be further apart than one step (gaps), never closer.
        if smallest < step_ns:
            i = int(np.argmin(np.diff(ts))) + 1
            raise CsvFormatError(
                f"line {first_line + i}: bars only {_human(smallest)} apart, but the "
                f"timeframe is {timeframe.name}; is this the right file or timeframe?"
            )
        typical = int(np.median(np.diff(ts)))
        if not timeframe.is_daily and typical > 4 * step_ns:
            raise CsvFormatError(
                f"bars are typically {_human(typical)} apart but the timeframe is "
                f"{timeframe.name}; is this the right file or timeframe?"
            )
    grid_ns = int(grid_step(timeframe, asset_class).total_seconds() * 1e9)
    off_grid = np.flatnonzero(ts % grid_ns != 0)
    if len(off_grid):
        i = int(off_grid[0])
        raise CsvFormatError(
            f"line {first_line + i}: timestamp {frame.index[i].isoformat()} is off the "
            f"{timeframe.name} grid (bars start on whole multiples of "
            f"{_human(grid_ns)} from 1970-01-01 UTC; {len(off_grid)} such line(s))"
        )
