from __future__ import annotations

from django.apps import AppConfig

from operations.kinds import register_kind


class OperationsConfig(AppConfig):
    name = "operations"
    verbose_name = "Operations"

    def ready(self) -> None:
        # The built-in kind; training and marketdata register theirs in their own ready().
        from operations.countdown import COUNTDOWN
        from operations.metrics import prune_dead_processes

        register_kind(COUNTDOWN)
        # The metrics files of processes that are gone (prometheus_client multiprocess mode).
        prune_dead_processes()
