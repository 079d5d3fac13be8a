from __future__ import annotations

from django.apps import AppConfig

from operations.kinds import register_kind


class MarketdataConfig(AppConfig):
    name = "marketdata"
    verbose_name = "Market data"

    def ready(self) -> None:
        # Models load before ready(); the kind's module imports them.
        from marketdata.kinds import DATA_LOAD
        from marketdata.loader import ib_pacing_budget
        from marketdata.metrics import IBPacingCollector
        from operations.metrics import register_collector

        register_kind(DATA_LOAD)
        # The IB pacing budget in use, read from the shared ledger at every scrape.
        register_collector("ib_pacing", IBPacingCollector(ib_pacing_budget))
