"""App config: plugs host agents into the operations core as an execution place."""

from __future__ import annotations

from django.apps import AppConfig


class HostagentsConfig(AppConfig):
    name = "hostagents"
    verbose_name = "Host agents"

    def ready(self) -> None:
        # The operations core does not import this app: it asks its places registry where an
        # operation runs, and the agent place is registered here (docs/architecture.md §6).
        # Models load before ready(); these modules import them.
        from hostagents.metrics import AgentsCollector
        from hostagents.place import AgentPlace
        from hostagents.retention import AGENT_ARTIFACTS
        from operations.metrics import register_collector
        from operations.models import Executor
        from operations.places import register_place
        from operations.retention import register_owner

        register_place(Executor.AGENT, AgentPlace())
        # Agent reachability, read from the registry at every scrape (docs/monitoring.md).
        register_collector("agents", AgentsCollector())
        # `ops prune` deletes the artifacts of the operations it deletes (operations.retention).
        register_owner(AGENT_ARTIFACTS)
