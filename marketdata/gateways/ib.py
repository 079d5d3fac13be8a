"""The Interactive Brokers gateway, on ib_async.

ib_async is asyncio-based and its blocking helpers fail inside a running loop, so this gateway
owns a private event loop that it drives with `run_until_complete` from the worker thread that
uses it; `close()` always disconnects and closes that loop.

Requests go one at a time. Errors IB sends while a request is outstanding are collected and
classified (`classify_ib_error`); an empty answer after our own timeout is `RequestTimeout`
(retryable), never "no data". A connection found dead is re-opened before the next request;
"client id in use" (326) moves on to the next client id, at most three times.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import date, datetime
from typing import Any

import pandas as pd

from marketdata.bars import COLUMNS, empty_bars
from marketdata.gateways.base import (
    ConnectionLost,
    ContractInfo,
    GatewayError,
    NoData,
    RequestTimeout,
    UnknownSymbol,
    classify_ib_error,
)
from marketdata.symbols import SymbolSpec
from marketdata.timeframes import Timeframe, ib_duration_for

logger = logging.getLogger(__name__)

CLIENT_ID_ATTEMPTS = 3


class IBGateway:
    source = "ib"
    needs_pacing = True

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: int,
        request_timeout: float = 60.0,
        connect_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = int(port)
        self.client_id = int(client_id)
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.reconnects = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ib: Any = None
        self._errors: list[tuple[int, int, str]] = []
        self._error_seen: asyncio.Event | None = None
        self._contracts: dict[str, Any] = {}

    # --- loop and connection -------------------------------------------------------------------
    def _run(self, coro: Any) -> Any:
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        return self._loop.run_until_complete(coro)

    def _on_error(self, req_id: int, code: int, text: str, *_: Any) -> None:
        if classify_ib_error(code, text) is None:
            return  # data-farm notices and the like
        self._errors.append((req_id, code, text))
        if self._error_seen is not None:
            self._error_seen.set()

    def connect(self) -> None:
        if self._ib is not None and self._ib.isConnected():
            return
        self._run(self._connect())

    async def _connect(self) -> None:
        from ib_async import IB

        last: Exception | None = None
        for attempt in range(CLIENT_ID_ATTEMPTS):
            client_id = self.client_id + attempt
            ib = IB()
            ib.errorEvent += self._on_error
            self._errors.clear()
            try:
                await ib.connectAsync(
                    self.host,
                    self.port,
                    clientId=client_id,
                    timeout=self.connect_timeout,
                    readonly=True,
                )
            except Exception as exc:  # refused, timed out, closed during the handshake
                ib.disconnect()
                last = exc
                if any(code == 326 for _, code, _ in self._errors):
                    logger.warning("IB client id %s in use; trying the next one", client_id)
                    continue
                raise ConnectionLost(
                    f"cannot connect to IB at {self.host}:{self.port} (client id {client_id}): "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            self._ib = ib
            self.client_id = client_id
            self._contracts.clear()
            return
        raise ConnectionLost(
            f"cannot connect to IB at {self.host}:{self.port}: client ids {self.client_id}.."
            f"{self.client_id + CLIENT_ID_ATTEMPTS - 1} are all in use ({last})"
        )

    def reconnect(self) -> None:
        """Drop whatever connection there is and open a fresh one."""
        self._disconnect()
        self.reconnects += 1
        self.connect()

    def _disconnect(self) -> None:
        if self._ib is not None:
            with contextlib.suppress(Exception):
                self._ib.disconnect()
            self._ib = None

    def close(self) -> None:
        self._disconnect()
        loop = self._loop
        self._loop = None
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(Exception):
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
        with contextlib.suppress(Exception):
            asyncio.set_event_loop(None)

    def _ensure_connected(self) -> Any:
        # isConnected() only says the socket object thinks it is open; a dead peer shows up as
        # ConnectionLost on the request, which the loader answers with reconnect().
        if self._ib is None or not self._ib.isConnected():
            self.connect()
        return self._ib

    # --- requests ------------------------------------------------------------------------------
    async def _request(self, make: Any, timeout: float) -> Any:
        """Run one request; raise the classified IB error if one arrived while it ran."""
        self._errors.clear()
        self._error_seen = asyncio.Event()
        task = asyncio.ensure_future(make())
        waiter = asyncio.ensure_future(self._error_seen.wait())
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
                self._raise_recorded()
                return result
            if waiter in done:
                await asyncio.sleep(0)  # let the request settle so its future is not orphaned
                self._raise_recorded()
            raise RequestTimeout(f"IB did not answer within {timeout:.0f} s")
        finally:
            for fut in (task, waiter):
                if not fut.done():
                    fut.cancel()
            self._error_seen = None

    def _raise_recorded(self) -> None:
        for _req_id, code, text in self._errors:
            error = classify_ib_error(code, text)
            if error is not None:
                raise error

    def _contract(self, spec: SymbolSpec) -> Any:
        from ib_async import Forex, Stock

        if spec.sec_type == "CASH":
            return Forex(spec.symbol, exchange=spec.exchange)
        return Stock(spec.ib_symbol, spec.exchange, spec.currency)

    def qualify(self, spec: SymbolSpec) -> ContractInfo:
        ib = self._ensure_connected()
        contract = self._contract(spec)

        async def go() -> Any:
            return await ib.qualifyContractsAsync(contract)

        try:
            result = self._run(self._request(go, self.request_timeout))
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
        ib = self._ensure_connected()

        async def go() -> Any:
            return await ib.reqHeadTimeStampAsync(contract, spec.what_to_show, False, 2)

        value = self._run(self._request(go, self.request_timeout))
        if isinstance(value, datetime):
            stamp = pd.Timestamp(value)
            return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        if isinstance(value, date):
            return pd.Timestamp(value).tz_localize("UTC")
        return None

    def fetch_bars(
        self, spec: SymbolSpec, timeframe: Timeframe, start: pd.Timestamp, end: pd.Timestamp
    ) -> pd.DataFrame:
        contract = self._qualified(spec)
        ib = self._ensure_connected()
        duration = ib_duration_for((end - start).to_pytimedelta(), timeframe)

        async def go() -> Any:
            # timeout=0: ib_async's own timeout returns an empty list, indistinguishable from
            # "no bars"; ours (in _request) raises RequestTimeout instead.
            return await ib.reqHistoricalDataAsync(
                contract,
                endDateTime=end.to_pydatetime(),
                durationStr=duration,
                barSizeSetting=timeframe.ib_bar_size,
                whatToShow=spec.what_to_show,
                useRTH=False,
                formatDate=2,
                timeout=0,
            )

        started = time.monotonic()
        try:
            bars = self._run(self._request(go, self.request_timeout))
        except NoData:
            raise
        except GatewayError:
            raise
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
