"""The synthetic gateway: the embedded default source (no account, no network)."""

from __future__ import annotations

import pandas as pd

from marketdata.gateways.base import ContractInfo, UnknownSymbol
from marketdata.symbols import SymbolSpec, is_synthetic_symbol
from marketdata.synthetic import first_day, generate_bars
from marketdata.timeframes import Timeframe


class SyntheticGateway:
    source = "synthetic"
    needs_pacing = False

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed

    def connect(self) -> None:
        return None

    def close(self) -> None:
        return None

    def qualify(self, spec: SymbolSpec) -> ContractInfo:
        if not is_synthetic_symbol(spec.symbol):
            raise UnknownSymbol(f"the synthetic source has no data for {spec.symbol}")
        return ContractInfo(
            symbol=spec.symbol,
            con_id=0,
            sec_type=spec.sec_type,
            exchange=spec.exchange,
            currency=spec.currency,
            description=f"synthetic {spec.asset_class} {spec.symbol}",
        )

    def head_timestamp(self, spec: SymbolSpec, timeframe: Timeframe) -> pd.Timestamp | None:
        return pd.Timestamp(first_day(spec.symbol)).tz_localize("UTC")

    def fetch_bars(
        self, spec: SymbolSpec, timeframe: Timeframe, start: pd.Timestamp, end: pd.Timestamp
    ) -> pd.DataFrame:
        # Never invent the future: a synthetic bar exists only once its start has passed.
        end = min(end, pd.Timestamp.now(tz="UTC").floor(timeframe.step))
        return generate_bars(spec.symbol, timeframe, start, end, seed=self.seed)
