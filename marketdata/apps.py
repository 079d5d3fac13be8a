from __future__ import annotations

from django.apps import AppConfig

from operations.kinds import register_kind


class MarketdataConfig(AppConfig):
    name = "marketdata"
    verbose_name = "Market data"

    def ready(self) -> None:
        # Models load before ready(); the kind's module imports them.
        from marketdata.kinds import DATA_LOAD

        register_kind(DATA_LOAD)
