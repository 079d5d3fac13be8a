"""Symbols map to IB contracts; timeframes are validated with the field named."""

from __future__ import annotations

import pytest

from marketdata.symbols import parse_symbol
from marketdata.timeframes import get_timeframe
from operations.exceptions import InvalidInput


def test_forex_pair_maps_to_an_idealpro_cash_contract():
    spec = parse_symbol("eur/usd")
    assert (spec.symbol, spec.sec_type, spec.ib_symbol, spec.currency, spec.exchange) == (
        "EURUSD",
        "CASH",
        "EUR",
        "USD",
        "IDEALPRO",
    )
    assert spec.what_to_show == "MIDPOINT"


@pytest.mark.parametrize(("raw", "asset"), [("AAPL", "stock"), ("spy", "etf"), ("BRK.B", "stock")])
def test_tickers_map_to_smart_routed_stock_contracts(raw, asset):
    spec = parse_symbol(raw)
    assert (spec.asset_class, spec.sec_type, spec.exchange, spec.currency) == (
        asset,
        "STK",
        "SMART",
        "USD",
    )


@pytest.mark.parametrize("raw", ["", "  ", "TOOLONGTICKER", "A$B", "123", None, 42])
def test_malformed_symbols_are_refused_naming_the_field(raw):
    with pytest.raises(InvalidInput) as exc:
        parse_symbol(raw)
    assert exc.value.field == "symbol"


@pytest.mark.parametrize(("raw", "name"), [("1h", "1h"), ("60m", "1h"), ("D", "1d"), ("5M", "5m")])
def test_timeframe_names_and_aliases(raw, name):
    assert get_timeframe(raw).name == name


@pytest.mark.parametrize("raw", ["2h", "", None, "1w"])
def test_unsupported_timeframes_are_refused_naming_the_field(raw):
    with pytest.raises(InvalidInput) as exc:
        get_timeframe(raw)
    assert exc.value.field == "timeframe"
