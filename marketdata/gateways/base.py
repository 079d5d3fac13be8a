"""The gateway protocol every bar source implements, and the errors a source can raise.

Errors carry `retryable`: the loader retries a retryable segment with backoff (reconnecting
first after a lost connection) and gives up on the symbol after a fatal one. An empty answer
after a timeout is `RequestTimeout` (retryable), never "no data": only the source saying so
(`NoData`) marks a range as empty.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from marketdata.symbols import SymbolSpec
from marketdata.timeframes import Timeframe


class GatewayError(Exception):
    retryable = False
    code: int | None = None

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class UnknownSymbol(GatewayError):
    """IB error 200: no security definition. Fatal for the symbol."""


class DataPermissionDenied(GatewayError):
    """IB 354/10090/10197: no market-data permission. Fatal."""


class InvalidRequest(GatewayError):
    """IB 321: the request itself is wrong (a bug on our side, not worth retrying)."""


class NoData(GatewayError):
    """The source answered that it has no bars for the range (not an error for the load)."""


class PacingViolation(GatewayError):
    """IB 162 pacing / 100 / 420: back off, then retry."""

    retryable = True


class ConnectionLost(GatewayError):
    """The connection broke (502/504/507/1100, socket closed): reconnect, then retry."""

    retryable = True


class RequestTimeout(GatewayError):
    """No answer in time. Retryable; never taken as "no data"."""

    retryable = True


class RequestCancelled(GatewayError):
    """The load was cancelled while it waited for IB (the request itself was abandoned)."""


class TransientError(GatewayError):
    """Anything else IB reports that may pass (data farm hiccups, 165 query messages…)."""

    retryable = True


INFORMATIONAL_CODES = frozenset({2103, 2104, 2105, 2106, 2107, 2108, 2119, 2158})


def classify_ib_error(code: int, text: str) -> GatewayError | None:
    """Map an IB error code + text to our error class; None for notices that are not errors."""
    lowered = text.lower()
    if code in INFORMATIONAL_CODES or 2100 <= code < 2200:
        return None
    message = f"IB error {code}: {text}"
    if code == 200:
        return UnknownSymbol(message, code=code)
    if code in (354, 10090, 10197):
        return DataPermissionDenied(message, code=code)
    if code == 321:
        return InvalidRequest(message, code=code)
    if code in (162, 165, 430):
        if "pacing" in lowered:
            return PacingViolation(message, code=code)
        if "no data" in lowered or "returned no data" in lowered:
            return NoData(message, code=code)
        if "permission" in lowered or "not allowed" in lowered:
            return DataPermissionDenied(message, code=code)
        return TransientError(message, code=code)
    if code in (100, 420):
        return PacingViolation(message, code=code)
    if code in (502, 504, 507, 1100, 1300):
        return ConnectionLost(message, code=code)
    if code == 326:
        return ConnectionLost(message, code=code)
    return TransientError(message, code=code)


@dataclass
class ContractInfo:
    symbol: str
    con_id: int
    sec_type: str
    exchange: str
    currency: str
    description: str = ""
    time_zone: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class BarGateway(Protocol):
    """A source of historical bars. One instance serves one load, from its worker thread.

    Optional extras the loader uses when present: `reconnect()` (after a lost connection),
    `bind_cancel(token)` (waits on the source end early with `RequestCancelled` once the load is
    cancelled), `pacing_key` (loads whose gateways have the same key share one process-wide
    PacingLimiter — IB paces per session; without it a load gets a limiter of its own) and
    `reconnects` (reported in the summary).
    """

    source: str
    needs_pacing: bool

    def connect(self) -> None:
        """Open the connection (idempotent); raises GatewayError."""

    def close(self) -> None:
        """Always safe to call, also after a failed connect."""

    def qualify(self, spec: SymbolSpec) -> ContractInfo:
        """Resolve the contract; UnknownSymbol if the source does not know it."""

    def head_timestamp(self, spec: SymbolSpec, timeframe: Timeframe) -> pd.Timestamp | None:
        """The earliest bar the source has (None if it cannot say)."""

    def fetch_bars(
        self, spec: SymbolSpec, timeframe: Timeframe, start: pd.Timestamp, end: pd.Timestamp
    ) -> pd.DataFrame:
        """Bars with start ≤ timestamp < end (possibly empty); raises GatewayError."""
