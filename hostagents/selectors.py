"""Reads of the agent registry; agent health is pulled here, when someone looks.

There is no health loop: `agent_get`/`agent_list` pull an agent's `/api/v1/health` only when the
stored snapshot is older than `KTRDR_AGENT_HEALTH_TTL`, single-flight per agent through the shared
cache (other readers meanwhile get the stored snapshot).
"""

from __future__ import annotations

import logging
import time

from hostagents import services
from hostagents.client import AgentError, client_for
from hostagents.conf import agent_setting
from hostagents.models import Agent
from operations.cache import try_lock_key, unlock_key
from operations.exceptions import NotFound

logger = logging.getLogger(__name__)

_LOCK_SECONDS = 30
PROBING_HEALTH_TTL = 1.0


def _stale(agent: Agent, ttl: float) -> bool:
    if agent.health_pulled_at is None:
        return True
    if ((agent.health or {}).get("gpu") or {}).get("probing"):
        # Its GPU probe was still running: whether it has a GPU is known soon, ask again soon.
        ttl = min(ttl, PROBING_HEALTH_TTL)
    return time.time() - agent.health_pulled_at.timestamp() >= ttl


def agent_pull_health(agent: Agent, *, force: bool = False) -> Agent:
    """The agent with a health snapshot at most one TTL old (pulled now if needed)."""
    ttl = float(agent_setting("AGENT_HEALTH_TTL"))
    if not force and not _stale(agent, ttl):
        return agent
    lock_key = f"ktrdr:agents:v1:health-lock:{agent.name}"
    token = try_lock_key(lock_key, _LOCK_SECONDS)
    if token is None:
        return agent  # someone is pulling right now; their result lands in the row
    try:
        try:
            health = client_for(agent).health()
        except AgentError as exc:
            logger.info("health of agent %s: %s", agent.name, exc)
            updated = services.agent_record_health(name=agent.name, health=None, error=str(exc))
        else:
            updated = services.agent_record_health(name=agent.name, health=health)
        return updated or agent
    finally:
        unlock_key(lock_key, token)


def agent_get(*, name: str, refresh: bool = False, pull_health: bool = True) -> Agent:
    services.agents_sync_from_settings()
    agent = Agent.objects.filter(name=name).first()
    if agent is None:
        raise NotFound(f"Agent {name!r} is not registered", details={"name": name})
    if pull_health and agent.enabled:
        agent = agent_pull_health(agent, force=refresh)
    return agent


def agent_list(*, pull_health: bool = True, enabled_only: bool = False) -> list[Agent]:
    services.agents_sync_from_settings()
    qs = Agent.objects.all().order_by("name")
    if enabled_only:
        qs = qs.filter(enabled=True)
    agents = list(qs)
    if pull_health:
        agents = [agent_pull_health(a) if a.enabled else a for a in agents]
    return agents


def agent_health_age(agent: Agent) -> float | None:
    if agent.health_pulled_at is None:
        return None
    return round(max(time.time() - agent.health_pulled_at.timestamp(), 0.0), 3)
