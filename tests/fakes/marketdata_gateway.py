"""A scriptable BarGateway for loader tests: synthetic bars, with failures on chosen segments."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from marketdata.gateways.base import ContractInfo, GatewayError
from marketdata.symbols import SymbolSpec
from marketdata.synthetic import generate_bars
from marketdata.timeframes import Timeframe


class FakeBarGateway:
    """Serves synthetic bars; `failures[n]` is raised on the n-th fetch call (1-based)."""

    source = "fake"

    def __init__(
        self,
        *,
        failures: dict[int, GatewayError] | None = None,
        needs_pacing: bool = False,
        on_fetch: Callable[[int], None] | None = None,
    ) -> None:
        self.failures = failures or {}
        self.needs_pacing = needs_pacing
        self.on_fetch = on_fetch
        self.calls: list[tuple[pd.Timestamp, pd.Timestamp]] = []
        self.closed = False
        self.connects = 0
        self.reconnects = 0

    def connect(self) -> None:
        self.connects += 1

    def reconnect(self) -> None:
        self.reconnects += 1

    def close(self) -> None:
        self.closed = True

    def qualify(self, spec: SymbolSpec) -> ContractInfo:
        return ContractInfo(spec.symbol, 1, spec.sec_type, spec.exchange, spec.currency)

    def head_timestamp(self, spec: SymbolSpec, timeframe: Timeframe) -> pd.Timestamp | None:
        return pd.Timestamp("2005-01-03", tz="UTC")

    def fetch_bars(
        self, spec: SymbolSpec, timeframe: Timeframe, start: pd.Timestamp, end: pd.Timestamp
    ) -> pd.DataFrame:
        self.calls.append((start, end))
        n = len(self.calls)
        if self.on_fetch is not None:
            self.on_fetch(n)
        if n in self.failures:
            raise self.failures[n]
        return generate_bars(spec.symbol, timeframe, start, end)
