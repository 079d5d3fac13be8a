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
from datetime import timedelta

import numpy as np
import pandas as pd

from marketdata.bars import COLUMNS, INDEX_NAME
from marketdata.timeframes import Timeframe

MAX_ROWS = 5_000_000
GZIP_MAGIC = b"\x1f\x8b"
_GZIP_CHUNK = 1 << 20
# Bars outside these years are refused: older or later dates are typos or wrong units.
EARLIEST = pd.Timestamp("1900-01-01", tz="UTC")
LATEST = pd.Timestamp("2200-01-01", tz="UTC")

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


def _parse_times(values: pd.Series, first_line: int) -> pd.DatetimeIndex:
    text = values.astype(str).str.strip()
    numeric = pd.to_numeric(text, errors="coerce")
    if text.str.fullmatch(r"\d{8}").all():
        # Eight digits are always YYYYMMDD, never epoch seconds (those would be 1970-1973):
        # `15000106` is 1500-01-06 and refused as such below, not read as a 1970 instant.
        parsed = pd.to_datetime(text, format="%Y%m%d", utc=True, errors="coerce")
    elif numeric.notna().all():
        unit = "ms" if numeric.abs().max() > 1e11 else "s"
        parsed = pd.to_datetime(numeric, unit=unit, utc=True, errors="coerce")
    else:
        parsed = None
        sample = text.iloc[0]
        for fmt in ("%Y%m%d %H:%M:%S", "%Y%m%d %H:%M", "%d.%m.%Y %H:%M:%S.%f",
                    "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M"):  # fmt: skip
            try:
                pd.to_datetime(sample, format=fmt)
            except (ValueError, TypeError):
                continue
            parsed = pd.to_datetime(text, format=fmt, utc=True, errors="coerce")
            break
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


def parse_bars_csv(
    data: bytes | str, *, timeframe: Timeframe | None = None, asset_class: str | None = None
) -> pd.DataFrame:
    """Parse a CSV into a bar frame, or raise CsvFormatError saying what and where.

    `data` is text or bytes (UTF-8, or gzip, which must already be decompressed with
    `gunzip_bounded` to bound it). With a timeframe, bar spacing and the grid are checked;
    `asset_class` picks the grid (`grid_step`).
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
    else:
        text = data
    if not text.strip():
        raise CsvFormatError("the file is empty")
    sep = _sniff_separator(text[:4096])
    first_line = text.lstrip().splitlines()[0]
    first_fields = [f.strip() for f in first_line.split(sep)]
    has_header = not (
        _looks_like_timestamp(first_fields[0])
        and all(_is_number(f) for f in first_fields[1:5] if f)
    )
    try:
        raw = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            header=0 if has_header else None,
            dtype=str,
            skipinitialspace=True,
            keep_default_na=False,
            nrows=MAX_ROWS + 1,
        )
    except (pd.errors.ParserError, ValueError) as exc:
        raise CsvFormatError(f"not a readable CSV: {exc}") from None
    if len(raw) > MAX_ROWS:
        raise CsvFormatError(f"too many rows: at most {MAX_ROWS:,} bars per file")
    if raw.empty:
        raise CsvFormatError("the file has a header but no rows")
    data_line = 2 if has_header else 1
    if has_header:
        raw.columns = [_norm(c) for c in raw.columns]
        cols = list(raw.columns)
        date_col = _find(cols, _DATE_NAMES)
        time_col = _find(cols, _TIME_NAMES)
        if date_col and time_col and date_col != time_col:
            stamps = raw[date_col].str.strip() + " " + raw[time_col].str.strip()
        else:
            ts_col = _find(cols, _TIMESTAMP_NAMES)
            if ts_col is None:
                raise CsvFormatError(
                    "line 1: no timestamp column; expected one named timestamp, time, date or "
                    f"datetime (or date + time columns); found: {', '.join(cols)}"
                )
            stamps = raw[ts_col]
        picked = {}
        for col, names in _COLUMN_NAMES.items():
            found = _find(cols, names)
            if found is None and col != "volume":
                raise CsvFormatError(
                    f"line 1: no {col} column; expected one of {', '.join(names[:3])}; "
                    f"found: {', '.join(cols)}"
                )
            picked[col] = found
    else:
        if raw.shape[1] < 5:
            raise CsvFormatError(
                "line 1: without a header the columns must be timestamp, open, high, low, "
                f"close[, volume]; found {raw.shape[1]} column(s)"
            )
        stamps = raw[0]
        picked = {"open": 1, "high": 2, "low": 3, "close": 4, "volume": 5 if raw.shape[1] > 5
                  else None}  # fmt: skip
    index = _parse_times(stamps, data_line)
    frame = pd.DataFrame(index=index)
    for col in COLUMNS:
        source = picked[col]
        if source is None:
            frame[col] = 0.0
            continue
        values = pd.to_numeric(raw[source].astype(str).str.strip(), errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy())
        if len(bad):
            i = int(bad[0])
            raise CsvFormatError(
                f"line {data_line + i}: {col} value {raw[source].iloc[i]!r} is not a number"
            )
        frame[col] = values.to_numpy(dtype="float64")
    frame.index.name = INDEX_NAME
    _check_rows(frame, data_line, timeframe, asset_class)
    return frame


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
