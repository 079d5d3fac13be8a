"""The Interactive Brokers gateway, on ib_async: one long-lived connection per IB endpoint.

ib_async is asyncio-based and an `IB` object belongs to the event loop it was created on. An
`IBConnection` owns one endpoint's connection: a dedicated event-loop thread ("ktrdr-ib …",
daemon, started on first use) on which the `IB` client is created, connected and used — every
call into ib_async happens on that thread. Loads run in their own worker threads and submit
their requests with `asyncio.run_coroutine_threadsafe`, then wait on the future (with the
request timeout, and cut short by a cancel). The thread is not a poller: it does I/O only when
a load asks (and reads what IB sends on an open socket).

`shared_connection(host, port, client_id)` gives the one connection per (host, port) for the
process; `IBGateway` — what a load uses, the `BarGateway` — is a thin per-load view of it
(its own cancel token, contract cache and reconnect count; `close()` leaves a shared
connection open). An `IBGateway` built without a connection owns a private one and closes it.

Connection hygiene (IB's API behaviour): "client id in use" (326) moves on to the next client
id, at most three times; a connection unused for `probe_after` seconds is checked with an active
probe (`reqCurrentTime`) before it is trusted, since `isConnected()` only says the socket object
thinks it is open; a connection found dead is re-opened (`reconnects` counts it); at interpreter
exit every connection is disconnected and its loop stopped.

Requests may run concurrently on one connection. Errors IB sends are routed to the request they
belong to (by request id; connection-wide errors with id -1 go to every request in flight) and
classified (`classify_ib_error`); an empty answer after our own timeout is `RequestTimeout`
(retryable), never "no data".
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import contextvars
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any

import pandas as pd

from marketdata.bars import COLUMNS, empty_bars
from marketdata.gateways.base import (
    ConnectionLost,
    ContractInfo,
    InvalidRequest,
    NoData,
    PacingViolation,
    RequestCancelled,
    RequestTimeout,
    TransientError,
    UnknownSymbol,
    classify_ib_error,
)
from marketdata.metrics import IB_PACING_VIOLATIONS, IB_REQUESTS
from marketdata.pacing import PacingTicket
from marketdata.symbols import SymbolSpec
from marketdata.timeframes import Timeframe, ib_duration

logger = logging.getLogger(__name__)

CLIENT_ID_ATTEMPTS = 3
# A connection unused this long is probed (reqCurrentTime) before the next request trusts it.
PROBE_AFTER_IDLE = 30.0
# How often a waiting load looks at its cancel token.
CANCEL_POLL = 0.05

# The request a coroutine on the loop belongs to; request ids ib_async allocates are noted on it.
_current_request: contextvars.ContextVar[_Pending | None] = contextvars.ContextVar(
    "ktrdr_ib_request", default=None
)


class _Pending:
    """One request in flight: its IB request ids and the errors IB sent for them."""

    __slots__ = ("errors", "req_ids", "seen")

    def __init__(self) -> None:
        self.req_ids: set[int] = set()
        self.errors: list[tuple[int, int, str]] = []
        self.seen = asyncio.Event()

    def add(self, req_id: int, code: int, text: str) -> None:
        self.errors.append((req_id, code, text))
        self.seen.set()

    def raise_recorded(self) -> None:
        for _req_id, code, text in self.errors:
            error = classify_ib_error(code, text)
            if error is not None:
                raise error


class IBConnection:
    """One IB endpoint's connection, owned by a dedicated event-loop thread.

    Thread-safe: the public methods may be called from any thread (not from the loop thread
    itself); they run their work on the loop and wait for it.
    """

    def __init__(
        self,
        host: str,
        port: int,
        client_id: int,
        *,
        connect_timeout: float = 10.0,
        probe_after: float = PROBE_AFTER_IDLE,
    ) -> None:
        self.host = host
        self.port = int(port)
        self.base_client_id = int(client_id)
        self.client_id = int(client_id)  # the one in use (after any 326 moves)
        self.connect_timeout = float(connect_timeout)
        self.probe_after = float(probe_after)
        self.connects = 0  # successful connects, the first one included
        self.probes = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        # Loop-thread state.
        self._ib: Any = None
        self._connect_lock: asyncio.Lock | None = None
        self._connect_errors: list[tuple[int, int, str]] | None = None
        self._in_flight: set[_Pending] = set()
        self._last_used = 0.0

    def __repr__(self) -> str:
        return f"<IBConnection {self.host}:{self.port} client {self.client_id}>"

    # --- the loop thread -----------------------------------------------------------------------
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise ConnectionLost(f"the IB connection to {self.host}:{self.port} is closed")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                started = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(started.set)
                    loop.run_forever()

                thread = threading.Thread(
                    target=run, name=f"ktrdr-ib {self.host}:{self.port}", daemon=True
                )
                thread.start()
                started.wait(10)
                self._loop, self._thread = loop, thread
            return self._loop

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def run(
        self,
        make: Callable[[], Awaitable[Any]],
        timeout: float,
        cancel: Any = None,
    ) -> Any:
        """Run `make()` on the loop; wait up to `timeout` s, stopping early when `cancel`
        (a CancellationToken) is set: then RequestCancelled, the coroutine cancelled."""
        loop = self._ensure_loop()
        if threading.current_thread() is self._thread:
            raise RuntimeError("IBConnection.run() called from its own loop thread")
        future = asyncio.run_coroutine_threadsafe(make(), loop)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            step = remaining if cancel is None else min(remaining, CANCEL_POLL)
            try:
                return future.result(timeout=max(step, 0.0))
            except concurrent.futures.TimeoutError:
                if cancel is not None and cancel.is_cancelled:
                    future.cancel()
                    raise RequestCancelled("cancelled while waiting for IB") from None
                if time.monotonic() >= deadline:
                    future.cancel()
                    raise RequestTimeout(f"IB did not answer within {timeout:.0f} s") from None
            except concurrent.futures.CancelledError:
                raise RequestCancelled("the IB request was cancelled") from None

    # --- connecting (loop thread) --------------------------------------------------------------
    def _on_error(self, req_id: int, code: int, text: str, *_: Any) -> None:
        if self._connect_errors is not None:
            self._connect_errors.append((req_id, code, text))  # 326 while connecting
            return
        if classify_ib_error(code, text) is None:
            return  # data-farm notices and the like
        targets = [p for p in self._in_flight if req_id in p.req_ids]
        if not targets and req_id == -1:
            targets = list(self._in_flight)  # connection-wide (1100, 502…): everyone's problem
        if not targets:
            logger.debug("IB error %s for request %s nobody waits for: %s", code, req_id, text)
        for pending in targets:
            pending.add(req_id, code, text)

    def _alive(self) -> bool:
        return self._ib is not None and self._ib.isConnected()

    async def _probe(self) -> bool:
        """An answer to reqCurrentTime within a short time: the connection really works."""
        self.probes += 1
        try:
            await asyncio.wait_for(self._ib.reqCurrentTimeAsync(), min(self.connect_timeout, 5.0))
            return True
        except Exception as exc:  # timeout, socket closed
            logger.warning("IB connection %s:%s failed its probe: %r", self.host, self.port, exc)
            return False

    async def _ensure(self, *, verify: bool = False) -> bool:
        """A working connection; True when one that existed had to be replaced."""
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        async with self._connect_lock:
            had = self.connects > 0
            if self._alive():
                idle = time.monotonic() - self._last_used
                if not (verify or idle >= self.probe_after) or await self._probe():
                    self._last_used = time.monotonic()
                    return False
            self._drop()
            await self._connect()
            self._last_used = time.monotonic()
            return had

    async def _connect(self) -> None:
        from ib_async import IB

        last: Exception | None = None
        for attempt in range(CLIENT_ID_ATTEMPTS):
            client_id = self.base_client_id + attempt
            ib = IB()
            ib.errorEvent += self._on_error
            self._connect_errors = []
            try:
                await ib.connectAsync(
                    self.host,
                    self.port,
                    clientId=client_id,
                    timeout=self.connect_timeout,
                    readonly=True,
                )
            except Exception as exc:  # refused, timed out, closed during the handshake
                ib.errorEvent -= self._on_error
                with contextlib.suppress(Exception):
                    ib.disconnect()
                last = exc
                if any(code == 326 for _, code, _ in self._connect_errors):
                    logger.warning("IB client id %s in use; trying the next one", client_id)
                    continue
                raise ConnectionLost(
                    f"cannot connect to IB at {self.host}:{self.port} (client id {client_id}): "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            finally:
                self._connect_errors = None
            self._note_request_ids(ib)
            self._ib = ib
            self.client_id = client_id
            self.connects += 1
            logger.info("connected to IB at %s:%s as client %s", self.host, self.port, client_id)
            return
        raise ConnectionLost(
            f"cannot connect to IB at {self.host}:{self.port}: client ids {self.base_client_id}.."
            f"{self.base_client_id + CLIENT_ID_ATTEMPTS - 1} are all in use ({last})"
        )

    @staticmethod
    def _note_request_ids(ib: Any) -> None:
        """Note every request id ib_async allocates on the request whose coroutine asked."""
        allocate = ib.client.getReqId

        def get_req_id() -> int:
            req_id = allocate()
            pending = _current_request.get()
            if pending is not None:
                pending.req_ids.add(req_id)
            return req_id

        ib.client.getReqId = get_req_id

    def _drop(self) -> None:
        ib, self._ib = self._ib, None
        if ib is not None:
            ib.errorEvent -= self._on_error
            with contextlib.suppress(Exception):
                ib.disconnect()

    # --- requests (loop thread) ----------------------------------------------------------------
    async def _request(
        self,
        make: Callable[[Any], Awaitable[Any]],
        timeout: float,
        abandon: Callable[[Any, int], None] | None = None,
    ) -> Any:
        """Run one request on a working connection; raise the classified IB error if one
        arrived for it while it ran. A request given up (our timeout, a cancel) is told to IB
        with `abandon(ib, req_id)` when one is given."""
        await self._ensure()
        ib = self._ib
        pending = _Pending()
        token = _current_request.set(pending)
        try:
            task = asyncio.ensure_future(make(ib))  # the task inherits `pending`
        finally:
            _current_request.reset(token)
        waiter = asyncio.ensure_future(pending.seen.wait())
        self._in_flight.add(pending)
        try:
            done, _ = await asyncio.wait(
                {task, waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if task in done:
                try:
                    result = task.result()
                except ConnectionError as exc:
                    raise ConnectionLost(f"IB connection lost during the request: {exc}") from exc
                # IB may end a request *and* report why (e.g. 162 then an empty answer).
                pending.raise_recorded()
                return result
            if waiter in done:
                await asyncio.sleep(0)  # let the request settle so its future is not orphaned
                pending.raise_recorded()
            raise RequestTimeout(f"IB did not answer within {timeout:.0f} s")
        finally:
            self._in_flight.discard(pending)
            self._last_used = time.monotonic()
            if not task.done() and abandon is not None and self._ib is ib and self._alive():
                for req_id in pending.req_ids:
                    with contextlib.suppress(Exception):
                        abandon(ib, req_id)
            for fut in (task, waiter):
                if not fut.done():
                    fut.cancel()

    # --- the thread-safe surface ---------------------------------------------------------------
    def _bound(self, timeout: float) -> float:
        # Our request timeout runs on the loop; the waiting thread allows for a connect first.
        return timeout + 2 * self.connect_timeout * CLIENT_ID_ATTEMPTS + 5.0

    def ensure_connected(self, *, verify: bool = False, cancel: Any = None) -> bool:
        """Connect if needed (probing an idle or, with `verify`, any open connection first).
        True when an earlier connection was found dead and replaced."""
        return self.run(lambda: self._ensure(verify=verify), self._bound(0.0), cancel)

    def request(
        self,
        make: Callable[[Any], Awaitable[Any]],
        timeout: float,
        cancel: Any = None,
        abandon: Callable[[Any, int], None] | None = None,
    ) -> Any:
        """`await make(ib)` on the loop with a working connection; classified errors raised."""
        return self.run(lambda: self._request(make, timeout, abandon), self._bound(timeout), cancel)

    def is_connected(self) -> bool:
        """What the client object believes (no probe)."""
        return self._alive()

    def drop(self) -> None:
        """Disconnect (the next request connects again); the loop thread stays."""
        if self._loop is None or self._closed:
            return

        async def go() -> None:
            self._drop()

        with contextlib.suppress(Exception):
            self.run(go, 10.0)

    def close(self) -> None:
        """Disconnect, stop the loop and its thread. Idempotent; the object is unusable after."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if thread.is_alive() and threading.current_thread() is not thread:

            async def shutdown() -> None:
                self._drop()
                tasks = [
                    t
                    for t in asyncio.all_tasks(loop)
                    if t is not asyncio.current_task() and not t.done()
                ]
                for task in tasks:
                    task.cancel()
                if tasks:
                    await asyncio.gather(*tasks, return_exceptions=True)

            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
        if not loop.is_running():
            with contextlib.suppress(Exception):
                loop.close()


# --- one connection per endpoint per process ---------------------------------------------------
_connections: dict[tuple[str, int], IBConnection] = {}
_connections_lock = threading.Lock()
_connections_pid = os.getpid()


def shared_connection(
    host: str, port: int, client_id: int, *, connect_timeout: float = 10.0
) -> IBConnection:
    """The process's connection to (host, port), created (not yet connected) on first use."""
    global _connections_pid
    key = (host, int(port))
    with _connections_lock:
        if _connections_pid != os.getpid():  # a forked child cannot use the parent's thread
            _connections.clear()
            _connections_pid = os.getpid()
        connection = _connections.get(key)
        if connection is None or connection._closed:
            connection = _connections[key] = IBConnection(
                host, port, client_id, connect_timeout=connect_timeout
            )
        else:
            connection.connect_timeout = float(connect_timeout)
        return connection


def close_shared_connections() -> None:
    """Disconnect and stop every shared connection (interpreter exit, tests)."""
    with _connections_lock:
        connections = list(_connections.values())
        _connections.clear()
    for connection in connections:
        try:
            connection.close()
        except Exception:  # at exit, nothing is worth a traceback
            logger.debug("closing %r failed", connection, exc_info=True)


atexit.register(close_shared_connections)


# --- the per-load gateway ----------------------------------------------------------------------
class IBGateway:
    """A load's view of an IB connection (the `BarGateway` for source "ib")."""

    source = "ib"
    needs_pacing = True
    # fetch_bars(..., pacing_ticket=) marks the moment the request is handed to the socket.
    reports_send_time = True

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: int,
        request_timeout: float = 60.0,
        connect_timeout: float = 10.0,
        connection: IBConnection | None = None,
    ) -> None:
        self.host = host
        self.port = int(port)
        self.request_timeout = request_timeout
        self._owned = connection is None
        self.connection = connection or IBConnection(
            host, port, client_id, connect_timeout=connect_timeout
        )
        self.reconnects = 0
        self.cancel_token: Any = None
        self._contracts: dict[str, Any] = {}

    @property
    def pacing_key(self) -> tuple[str, int]:
        """Loads that share this key share one PacingLimiter (IB paces per session)."""
        return (self.host, self.port)

    @property
    def client_id(self) -> int:
        return self.connection.client_id

    def bind_cancel(self, token: Any) -> None:
        """Waits on IB end early (RequestCancelled) once `token` is cancelled."""
        self.cancel_token = token

    # --- connection ----------------------------------------------------------------------------
    def connect(self) -> None:
        if self.connection.ensure_connected(cancel=self.cancel_token):
            self.reconnects += 1

    def reconnect(self) -> None:
        """After a lost connection: probe it, and open a fresh one if it is dead. (Another load
        on the same connection may have re-opened it already; then this is one probe.)"""
        if self.connection.ensure_connected(verify=True, cancel=self.cancel_token):
            self.reconnects += 1

    def close(self) -> None:
        if self._owned:
            self.connection.close()

    # --- requests ------------------------------------------------------------------------------
    def _request(
        self,
        make: Callable[[Any], Awaitable[Any]],
        abandon: Callable[[Any, int], None] | None = None,
        *,
        request: str,
    ) -> Any:
        """One request to IB, counted by how it ended (`ktrdr_ib_requests`)."""
        try:
            result = self.connection.request(make, self.request_timeout, self.cancel_token, abandon)
        except PacingViolation:
            IB_REQUESTS.labels(request, "pacing_violation").inc()
            IB_PACING_VIOLATIONS.labels(request).inc()
            raise
        except NoData:
            IB_REQUESTS.labels(request, "no_data").inc()
            raise
        except RequestTimeout:
            IB_REQUESTS.labels(request, "timeout").inc()
            raise
        except RequestCancelled:
            IB_REQUESTS.labels(request, "cancelled").inc()
            raise
        except Exception:
            IB_REQUESTS.labels(request, "error").inc()
            raise
        IB_REQUESTS.labels(request, "ok").inc()
        return result

    def _contract(self, spec: SymbolSpec) -> Any:
        from ib_async import Forex, Stock

        if spec.sec_type == "CASH":
            return Forex(spec.symbol, exchange=spec.exchange)
        return Stock(spec.ib_symbol, spec.exchange, spec.currency)

    def qualify(self, spec: SymbolSpec) -> ContractInfo:
        contract = self._contract(spec)

        async def go(ib: Any) -> Any:
            return await ib.qualifyContractsAsync(contract)

        try:
            result = self._request(go, request="qualify")
        except UnknownSymbol as exc:
            raise UnknownSymbol(f"{spec.symbol}: {exc.message}", code=exc.code) from None
        if not result or result[0] is None:
            raise UnknownSymbol(f"{spec.symbol}: IB returned no contract for {contract}")
        qualified = result[0]
        self._contracts[spec.symbol] = qualified
        return ContractInfo(
            symbol=spec.symbol,
            con_id=int(qualified.conId),
            sec_type=qualified.secType,
            exchange=qualified.exchange,
            currency=qualified.currency,
            description=qualified.localSymbol or spec.symbol,
        )

    def _qualified(self, spec: SymbolSpec) -> Any:
        if spec.symbol not in self._contracts:
            self.qualify(spec)
        return self._contracts[spec.symbol]

    def head_timestamp(self, spec: SymbolSpec, timeframe: Timeframe) -> pd.Timestamp | None:
        contract = self._qualified(spec)

        async def go(ib: Any) -> Any:
            return await ib.reqHeadTimeStampAsync(contract, spec.what_to_show, False, 2)

        value = self._request(
            go, lambda ib, req_id: ib.client.cancelHeadTimeStamp(req_id), request="head_timestamp"
        )
        if isinstance(value, datetime):
            stamp = pd.Timestamp(value)
            return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        if isinstance(value, date):
            return pd.Timestamp(value).tz_localize("UTC")
        return None

    def fetch_bars(
        self,
        spec: SymbolSpec,
        timeframe: Timeframe,
        start: pd.Timestamp,
        end: pd.Timestamp,
        *,
        pacing_ticket: PacingTicket | None = None,
    ) -> pd.DataFrame:
        try:
            # Never longer than IB allows for the bar size: IB would answer 321 (the planner
            # cuts segments to fit, docs/marketdata.md "IB request plans").
            duration = str(ib_duration(start, end, timeframe))
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        contract = self._qualified(spec)
        end_dt = end.to_pydatetime()

        async def go(ib: Any) -> Any:
            if pacing_ticket is not None and pacing_ticket.lapsed:
                # Others counted this slot as gone by its deadline; sending now could break
                # the pacing they planned on (docs/marketdata.md, pacing).
                raise TransientError("the pacing slot lapsed before the request could be sent")
            # timeout=0: ib_async's own timeout returns an empty list, indistinguishable from
            # "no bars"; ours (in IBConnection._request) raises RequestTimeout instead.
            request = asyncio.ensure_future(
                ib.reqHistoricalDataAsync(
                    contract,
                    endDateTime=end_dt,
                    durationStr=duration,
                    barSizeSetting=timeframe.ib_bar_size,
                    whatToShow=spec.what_to_show,
                    useRTH=False,
                    formatDate=2,
                    timeout=0,
                )
            )
            # The request's first step (run before we resume) writes it to the socket: the
            # send time the pacing ledger is stamped with, not the time the slot was taken.
            await asyncio.sleep(0)
            if pacing_ticket is not None:
                pacing_ticket.mark_sent()
            return await request

        started = time.monotonic()
        bars = self._request(
            go, lambda ib, req_id: ib.client.cancelHistoricalData(req_id), request="historical_data"
        )
        logger.debug(
            "%s %s: %s bars in %.2fs", spec.symbol, duration, len(bars), time.monotonic() - started
        )
        return _to_frame(bars, start, end)


def _to_frame(bars: Any, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    if not bars:
        return empty_bars()
    stamps = []
    rows = []
    for bar in bars:
        stamp = pd.Timestamp(bar.date)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        stamps.append(stamp)
        # IB reports -1 volume where there is none (forex MIDPOINT).
        rows.append((bar.open, bar.high, bar.low, bar.close, max(float(bar.volume), 0.0)))
    index = pd.DatetimeIndex(stamps, name="timestamp").as_unit("ns")
    frame = pd.DataFrame(rows, columns=list(COLUMNS), index=index, dtype="float64")
    frame = frame[~frame.index.duplicated(keep="last")].sort_index()
    # Durations are rounded up, so IB may return bars before the segment: keep only ours.
    return frame[(frame.index >= start) & (frame.index < end)]
