"""Symbol validation and the IB contract each symbol maps to (pure Python).

A symbol is either a forex pair (six letters made of two known ISO currency codes: `EURUSD`) or a
stock/ETF ticker (`AAPL`, `BRK.B`, `SPY`). The mapping is what the IB gateway qualifies and what
the simulator answers contract details for.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from operations.exceptions import InvalidInput

CURRENCIES = frozenset(
    {"USD", "EUR", "GBP", "JPY", "CHF", "AUD", "NZD", "CAD", "SEK", "NOK", "DKK", "HKD", "SGD",
     "MXN", "ZAR", "PLN", "CZK", "HUF", "TRY", "CNH", "ILS"}
)  # fmt: skip
ETFS = frozenset({"SPY", "QQQ", "IWM", "DIA", "GLD", "TLT", "EEM", "XLF", "XLK", "VTI"})
_TICKER = re.compile(r"^[A-Z][A-Z0-9]{0,5}(\.[A-Z])?$")


@dataclass(frozen=True)
class SymbolSpec:
    """A validated symbol and the contract it maps to."""

    symbol: str
    asset_class: str  # "forex" | "stock" | "etf"
    sec_type: str  # IB secType: CASH for forex, STK for stocks and ETFs
    ib_symbol: str
    currency: str
    exchange: str
    primary_exchange: str = ""
    what_to_show: str = "TRADES"

    def contract_fields(self) -> dict[str, Any]:
        return asdict(self)


def parse_symbol(raw: object) -> SymbolSpec:
    """Validate `raw` and map it to its contract; InvalidInput (field "symbol") otherwise."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput("symbol is required", field="symbol")
    symbol = raw.strip().upper().replace("/", "").replace("-", ".")
    if len(symbol) == 6 and symbol.isalpha() and symbol[:3] in CURRENCIES:
        base, quote = symbol[:3], symbol[3:]
        if quote not in CURRENCIES or base == quote:
            raise InvalidInput(
                f"{raw!r} looks like a forex pair but {quote} is not a known currency "
                f"paired with {base}",
                field="symbol",
            )
        # IB's forex bars have no traded volume: MIDPOINT is what its own charts show.
        return SymbolSpec(symbol, "forex", "CASH", base, quote, "IDEALPRO", "", "MIDPOINT")
    if not _TICKER.match(symbol):
        raise InvalidInput(
            f"{raw!r} is not a valid symbol: use a forex pair like EURUSD or a ticker of 1-6 "
            "letters/digits like AAPL (optionally with a class suffix like BRK.B)",
            field="symbol",
        )
    asset_class = "etf" if symbol in ETFS else "stock"
    return SymbolSpec(
        symbol, asset_class, "STK", symbol.replace(".", " "), "USD", "SMART", "NASDAQ"
    )


# Symbols the synthetic source (and the IB simulator) know, with their starting price level and
# the first day they have data (the simulator's head timestamp). Anything else is "unknown".
SYNTHETIC_UNIVERSE: dict[str, dict[str, Any]] = {
    "EURUSD": {"price": 1.10, "annual_vol": 0.08, "first_day": "2005-01-03"},
    "GBPUSD": {"price": 1.30, "annual_vol": 0.09, "first_day": "2005-01-03"},
    "USDJPY": {"price": 110.0, "annual_vol": 0.09, "first_day": "2005-01-03"},
    "AUDUSD": {"price": 0.72, "annual_vol": 0.10, "first_day": "2005-01-03"},
    "AAPL": {"price": 150.0, "annual_vol": 0.28, "first_day": "2010-01-04"},
    "MSFT": {"price": 250.0, "annual_vol": 0.25, "first_day": "2010-01-04"},
    "TSLA": {"price": 200.0, "annual_vol": 0.55, "first_day": "2012-01-03"},
    "SPY": {"price": 400.0, "annual_vol": 0.17, "first_day": "2005-01-03"},
    "QQQ": {"price": 330.0, "annual_vol": 0.22, "first_day": "2005-01-03"},
}


def is_synthetic_symbol(symbol: str) -> bool:
    return symbol in SYNTHETIC_UNIVERSE
