"""App config: registers the agent source with the operations core at start-up."""

from __future__ import annotations

from django.apps import AppConfig


class HostagentsConfig(AppConfig):
    name = "hostagents"
    verbose_name = "Host agents"

    def ready(self) -> None:
        # The operations core does not import this app; it asks the registry for the source of
        # an operation's executor, so refreshing remote operations is plugged in here.
        from hostagents.source import AgentSource
        from operations.execution import register_source
        from operations.models import Executor

        register_source(Executor.AGENT, AgentSource())

        from hostagents.integrations import register_hooks

        register_hooks()
