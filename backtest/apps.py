from __future__ import annotations

from django.apps import AppConfig

from operations.kinds import register_kind


class BacktestConfig(AppConfig):
    name = "backtest"
    verbose_name = "Backtests"

    def ready(self) -> None:
        # Models load before ready(); the kind's module imports them.
        from backtest.kinds import BACKTEST

        register_kind(BACKTEST)
