"""IBGatewaySimulator: an asyncio server the real ib_async client connects to as if to IB Gateway.

It answers the handshake and the start-up syncs, contract details, head timestamps and
historical bars (from the synthetic generator or one CSV-backed series), sends error 200 for
unknown symbols, error 321 for malformed requests and for durations IB does not accept for the
bar size (longer than its longest or shorter than its shortest, `timeframes.ib_duration_limits`;
months and years are calendar ones back from the end), and error 162 when a client breaks *its
own copy* of IB's pacing rules. Switches for tests and demos: `drop_on_request=N` closes the
connection instead of answering the N-th historical request (once), `response_delay` makes every
historical answer take that long, and — callable from any thread while it runs —
`drop_connections()` closes every client connection now, `silence_connections()` keeps them open
but never answers on them again (a half-open socket, as after a laptop sleep; new connections are
served normally). `stats` counts connections (= handshakes), the most open at once, historical
requests and their cancels, pacing violations (each error 162 it sent for pacing), invalid
requests (each error 321) and drops;
with `stats_path` the counters are also written to that JSON file after every historical request,
for tests that run the simulator as its own process.

No Django: the management command and the tests both run it; `SimulatorThread` runs one on a
background event loop for in-process use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from marketdata.ibsim import protocol as p
from marketdata.pacing import PacingLimiter, PacingRules
from marketdata.symbols import SYNTHETIC_UNIVERSE, parse_symbol
from marketdata.synthetic import first_day, generate_bars
from marketdata.timeframes import (
    IB_BAR_SIZES,
    Timeframe,
    ib_duration_problem,
    parse_ib_duration,
)

logger = logging.getLogger("marketdata.ibsim")

MAX_MESSAGE = 1 << 20


class BarSource:
    """What the simulator serves: which symbols exist, their head timestamp and their bars."""

    def knows(self, symbol: str) -> bool:
        raise NotImplementedError

    def head(self, symbol: str) -> datetime:
        raise NotImplementedError

    def bars(self, symbol: str, tf: Timeframe, start: datetime, end: datetime) -> pd.DataFrame:
        raise NotImplementedError


class SyntheticSource(BarSource):
    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def knows(self, symbol: str) -> bool:
        return symbol in SYNTHETIC_UNIVERSE

    def head(self, symbol: str) -> datetime:
        day = first_day(symbol)
        return datetime(day.year, day.month, day.day, tzinfo=UTC)

    def bars(self, symbol: str, tf: Timeframe, start: datetime, end: datetime) -> pd.DataFrame:
        return generate_bars(symbol, tf, start, end, seed=self.seed)


class FrameSource(BarSource):
    """One series from memory (a CSV the command loaded); other timeframes have no data."""

    def __init__(self, symbol: str, timeframe: str, frame: pd.DataFrame) -> None:
        self.symbol = symbol
        self.timeframe = timeframe
        self.frame = frame

    def knows(self, symbol: str) -> bool:
        return symbol == self.symbol

    def head(self, symbol: str) -> datetime:
        return self.frame.index[0].to_pydatetime()

    def bars(self, symbol: str, tf: Timeframe, start: datetime, end: datetime) -> pd.DataFrame:
        if tf.name != self.timeframe:
            return self.frame.iloc[0:0]
        index = self.frame.index
        return self.frame[(index >= start) & (index < end)]


@dataclass
class SimulatorStats:
    connections: int = 0
    open_connections: int = 0
    max_open_connections: int = 0
    historical_requests: int = 0
    pacing_violations: int = 0
    drops: int = 0
    historical_cancels: int = 0
    # Error 321 answers: malformed requests and durations outside IB's limits for the bar size.
    invalid_requests: int = 0
    errors_sent: list[tuple[int, int, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """The counters (no error list), as the stats file holds them."""
        return {k: v for k, v in asdict(self).items() if isinstance(v, int)}


class IBGatewaySimulator:
    def __init__(
        self,
        source: BarSource | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 4002,
        pacing: PacingRules | None = None,
        enforce_pacing: bool = True,
        drop_on_request: int | None = None,
        response_delay: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        stats_path: Path | str | None = None,
    ) -> None:
        self.source = source or SyntheticSource()
        self.host = host
        self.port = port
        self.pacing_rules = pacing or PacingRules()
        self.enforce_pacing = enforce_pacing
        self.drop_on_request = drop_on_request
        self.response_delay = response_delay
        self.clock = clock
        self.now = now
        self.stats = SimulatorStats()
        # IB paces per session across connections; so does the simulator — by the exact rules,
        # without the margin our own limiter adds.
        self._pacing = PacingLimiter(self.pacing_rules.exact(), clock=clock)
        self.stats_path = Path(stats_path) if stats_path is not None else None
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._silent: set[asyncio.StreamWriter] = set()
        self._answers: set[asyncio.Task] = set()
        self._cancelled: set[tuple[asyncio.StreamWriter, int]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> int:
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("IB Gateway simulator listening on %s:%s", self.host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    # --- switches callable from other threads -------------------------------------------------
    def _call(self, fn: Callable[[], None]) -> None:
        if self._loop is None:
            raise RuntimeError("the simulator is not running")
        done = threading.Event()

        def go() -> None:
            try:
                fn()
            finally:
                done.set()

        self._loop.call_soon_threadsafe(go)
        if not done.wait(10):
            raise RuntimeError("the simulator's loop did not answer")

    def drop_connections(self) -> int:
        """Close every client connection now (as a gateway restart would); how many."""
        writers = list(self._writers)

        def close() -> None:
            for writer in writers:
                self.stats.drops += 1
                writer.close()

        self._call(close)
        return len(writers)

    def silence_connections(self) -> int:
        """Stop answering on every open connection, keeping it open; how many."""
        writers = list(self._writers)
        self._call(lambda: self._silent.update(writers))
        return len(writers)

    # --- connection ----------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        self.stats.open_connections += 1
        self.stats.max_open_connections = max(
            self.stats.max_open_connections, self.stats.open_connections
        )
        self._writers.add(writer)
        try:
            await self._handshake(reader, writer)
            while True:
                fields = await self._read_message(reader)
                if fields is None:
                    break
                if not fields or writer in self._silent:
                    continue
                keep_going = await self._dispatch(fields, writer)
                if not keep_going:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # The simulator is stopping (SimulatorThread cancels the handlers still reading).
            # Ended, not cancelled: Python 3.11's start_server logs the CancelledError of a
            # handler task as "Exception in callback" with a traceback.
            pass
        except p.ProtocolError as exc:
            logger.warning("protocol error from client: %s", exc)
        finally:
            self.stats.open_connections -= 1
            self._writers.discard(writer)
            self._silent.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        prefix = await reader.readexactly(4)
        if prefix != b"API\0":
            raise p.ProtocolError(f"expected API\\0, got {prefix!r}")
        payload = await self._read_frame(reader)
        lo, hi = p.parse_client_versions(payload.decode())
        if hi < p.MIN_CLIENT_VERSION or lo > p.SERVER_VERSION:
            raise p.ProtocolError(f"client versions {lo}..{hi} not supported")
        conn_time = self.now().strftime("%Y%m%d %H:%M:%S UTC")
        writer.write(p.frame(min(hi, p.SERVER_VERSION), conn_time))
        await writer.drain()

    async def _read_frame(self, reader: asyncio.StreamReader) -> bytes:
        (size,) = struct.unpack(">I", await reader.readexactly(4))
        if size > MAX_MESSAGE:
            raise p.ProtocolError(f"message of {size} bytes is too large")
        return await reader.readexactly(size)

    async def _read_message(self, reader: asyncio.StreamReader) -> list[str] | None:
        try:
            return p.split_fields(await self._read_frame(reader))
        except asyncio.IncompleteReadError:
            return None

    def _error(self, writer: asyncio.StreamWriter, req_id: int, code: int, text: str) -> None:
        self.stats.errors_sent.append((req_id, code, text))
        writer.write(p.frame(4, 2, req_id, code, text, ""))

    async def _dispatch(self, fields: list[str], writer: asyncio.StreamWriter) -> bool:
        msg_id = int(fields[0])
        send = writer.write
        if msg_id == p.START_API:
            send(p.frame(9, 1, 1))
            send(p.frame(15, 1, p.ACCOUNT))
            # What a real gateway says right after login (informational notices).
            send(p.frame(4, 2, -1, 2104, "Market data farm connection is OK:usfarm", ""))
            send(p.frame(4, 2, -1, 2106, "HMDS data farm connection is OK:ushmds", ""))
        elif msg_id == p.REQ_POSITIONS:
            send(p.frame(62, 1))
        elif msg_id == p.REQ_OPEN_ORDERS:
            send(p.frame(53, 1))
        elif msg_id == p.REQ_COMPLETED_ORDERS:
            send(p.frame(102))
        elif msg_id == p.REQ_ACCOUNT_UPDATES:
            if len(fields) > 2 and fields[2] == "1":
                send(p.frame(54, 1, fields[3] if len(fields) > 3 else p.ACCOUNT))
        elif msg_id == p.REQ_ACCOUNT_UPDATES_MULTI:
            send(p.frame(74, 1, fields[2]))
        elif msg_id == p.REQ_EXECUTIONS:
            send(p.frame(55, 1, fields[2]))
        elif msg_id == p.REQ_CURRENT_TIME:
            send(p.frame(49, 1, int(self.now().timestamp())))
        elif msg_id == p.REQ_CONTRACT_DETAILS:
            self._contract_details(fields, writer)
        elif msg_id == p.REQ_HEAD_TIMESTAMP:
            self._head_timestamp(fields, writer)
        elif msg_id == p.REQ_HISTORICAL_DATA:
            return await self._historical(fields, writer)
        elif msg_id == p.CANCEL_HISTORICAL_DATA:
            # A delayed answer not yet sent is never sent.
            self.stats.historical_cancels += 1
            self._cancelled.add((writer, int(fields[2])))
        # Anything else (cancels, market data type…) needs no answer here.
        await writer.drain()
        return True

    # --- requests ------------------------------------------------------------------------------
    def _contract_record(self, contract: p.ContractFields) -> dict | None:
        try:
            spec = parse_symbol(contract.our_symbol)
        except Exception:
            return None
        if not self.source.knows(spec.symbol):
            return None
        local = f"{spec.ib_symbol}.{spec.currency}" if spec.sec_type == "CASH" else spec.ib_symbol
        return {
            "ib_symbol": spec.ib_symbol,
            "sec_type": spec.sec_type,
            "exchange": spec.exchange,
            "primary_exchange": spec.primary_exchange,
            "currency": spec.currency,
            "local_symbol": local,
            "market_name": local if spec.sec_type == "CASH" else "NMS",
            "trading_class": local if spec.sec_type == "CASH" else "NMS",
            # Deterministic, positive conId per symbol.
            "con_id": 100_000 + sum(ord(ch) * 31**i for i, ch in enumerate(spec.symbol)) % 899_999,
            "min_tick": "0.00005" if spec.sec_type == "CASH" else "0.01",
            "long_name": f"Simulated {spec.symbol}",
            "time_zone": "US/Eastern",
            "symbol": spec.symbol,
        }

    def _known_contract(
        self, contract: Any, req_id: int, writer: asyncio.StreamWriter
    ) -> dict[str, Any] | None:
        """The contract's record, or None after answering IB's error 200 for an unknown one."""
        record = self._contract_record(contract)
        if record is None:
            self._error(
                writer, req_id, 200, "No security definition has been found for the request"
            )
        return record

    def _contract_details(self, fields: list[str], writer: asyncio.StreamWriter) -> None:
        req_id = int(fields[2])
        contract = p.read_contract(fields, 3)
        record = self._known_contract(contract, req_id, writer)
        if record is None:
            return
        writer.write(p.frame(*p.contract_data_fields(req_id, record)))
        writer.write(p.frame(52, 1, req_id))

    def _head_timestamp(self, fields: list[str], writer: asyncio.StreamWriter) -> None:
        # Field order: id 87, reqId, the 12 contract fields, includeExpired, useRTH,
        # whatToShow and formatDate (client.py reqHeadTimeStamp).
        req_id = int(fields[1])
        contract = p.read_contract(fields, 2)
        record = self._known_contract(contract, req_id, writer)
        if record is None:
            return
        head = self.source.head(record["symbol"])
        format_date = fields[17] if len(fields) > 17 else "1"
        text = (
            str(int(head.timestamp())) if format_date == "2" else head.strftime("%Y%m%d-%H:%M:%S")
        )
        writer.write(p.frame(88, req_id, text))

    def _write_stats(self) -> None:
        """Leave the counters in `stats_path` (another process's test reads them)."""
        if self.stats_path is None:
            return
        tmp = self.stats_path.with_name(f".{self.stats_path.name}.tmp")
        tmp.write_text(json.dumps(self.stats.counts()))
        os.replace(tmp, self.stats_path)

    async def _historical(self, fields: list[str], writer: asyncio.StreamWriter) -> bool:
        try:
            return await self._historical_request(fields, writer)
        finally:
            self._write_stats()

    async def _historical_request(self, fields: list[str], writer: asyncio.StreamWriter) -> bool:
        request = p.parse_historical_request(fields)
        req_id = request.req_id
        self.stats.historical_requests += 1
        if self.drop_on_request is not None and self.stats.historical_requests == (
            self.drop_on_request
        ):
            # The switch: vanish mid-request, as a gateway restart or network cut would.
            self.stats.drops += 1
            logger.info("dropping the connection on historical request %s", req_id)
            return False
        record = self._contract_record(request.contract)
        if record is None:
            self._error(
                writer, req_id, 200, "No security definition has been found for the request"
            )
            return True
        if self.enforce_pacing:
            key = (record["symbol"], request.what_to_show)
            if self._pacing.delay(key, request.identity) > 0:
                self.stats.pacing_violations += 1
                self._pacing.record(key, request.identity)  # IB counts violating requests too
                self._error(
                    writer,
                    req_id,
                    162,
                    "Historical Market Data Service error message:"
                    "Historical data request pacing violation",
                )
                return True
            self._pacing.record(key, request.identity)
        tf = IB_BAR_SIZES.get(request.bar_size)
        try:
            if request.duration.strip().upper().endswith(" H"):
                raise ValueError("duration unit H is not supported")
            duration = parse_ib_duration(request.duration)
            end = p.parse_ib_end(request.end, self.now())
        except (ValueError, p.ProtocolError) as exc:
            self.stats.invalid_requests += 1
            self._error(writer, req_id, 321, f"Error validating request:-'bP' : cause - {exc}")
            return True
        if tf is None:
            self.stats.invalid_requests += 1
            self._error(
                writer, req_id, 321, f"Error validating request: bar size {request.bar_size!r}"
            )
            return True
        # IB's duration steps: a duration too long (or too short) for the bar size is refused,
        # never answered with whatever fits (timeframes.ib_duration_limits).
        problem = ib_duration_problem(duration, request.bar_size)
        if problem is not None:
            self.stats.invalid_requests += 1
            self._error(writer, req_id, 321, f"Error validating request:-'bX' : cause - {problem}")
            return True
        start = duration.start_from(pd.Timestamp(end)).to_pydatetime()
        if self.response_delay:
            # As IB does, answer later without holding up the connection's other requests.
            task = asyncio.ensure_future(
                self._answer_later(writer, request, record=record, tf=tf, start=start, end=end)
            )
            self._answers.add(task)
            task.add_done_callback(self._answers.discard)
            return True
        await self._answer_historical(writer, request, record=record, tf=tf, start=start, end=end)
        return True

    async def _answer_later(
        self,
        writer: asyncio.StreamWriter,
        request: p.HistoricalRequest,
        *,
        record: dict,
        tf: Timeframe,
        start: datetime,
        end: datetime,
    ) -> None:
        await asyncio.sleep(self.response_delay)
        cancelled = (writer, request.req_id) in self._cancelled
        self._cancelled.discard((writer, request.req_id))
        if writer.is_closing() or writer in self._silent or cancelled:
            return
        with contextlib.suppress(ConnectionError):
            await self._answer_historical(
                writer, request, record=record, tf=tf, start=start, end=end
            )

    async def _answer_historical(
        self,
        writer: asyncio.StreamWriter,
        request: p.HistoricalRequest,
        *,
        record: dict,
        tf: Timeframe,
        start: datetime,
        end: datetime,
    ) -> None:
        req_id = request.req_id
        end = min(end, self.now())
        bars = self.source.bars(record["symbol"], tf, start, end) if end > start else None
        if bars is None or bars.empty:
            self._error(
                writer,
                req_id,
                162,
                "Historical Market Data Service error message:HMDS query returned no data: "
                f"{record['local_symbol']}@{request.what_to_show}",
            )
            return
        out: list[object] = [
            17,
            req_id,
            start.strftime("%Y%m%d  %H:%M:%S"),
            end.strftime("%Y%m%d  %H:%M:%S"),
            len(bars),
        ]
        daily = tf.is_daily
        for ts, row in zip(bars.index, bars.itertuples(index=False), strict=True):
            close = row.close
            out += [
                p.format_bar_date(ts.to_pydatetime(), daily=daily, format_date=request.format_date),
                repr(row.open),
                repr(row.high),
                repr(row.low),
                repr(close),
                repr(row.volume),
                repr(close),
                1,
            ]
        writer.write(p.frame(*out))
        await writer.drain()


class SimulatorThread:
    """Run a simulator on its own event loop in a daemon thread (tests, benchmarks, demos)."""

    def __init__(self, simulator: IBGatewaySimulator) -> None:
        self.simulator = simulator
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="ib-gateway-sim", daemon=True)
        self._ready = threading.Event()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self.simulator.start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self.simulator.stop())
        # Connection handlers still waiting on a read end here, not when the loop is collected.
        tasks = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self._loop.close()

    def start(self) -> int:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("IB Gateway simulator did not start")
        return self.simulator.port

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> SimulatorThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
