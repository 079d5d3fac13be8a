"""Writes to the agent registry (backend side): seeding from settings, adding, health records."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlparse

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from hostagents.models import AGENT_NAME_VALIDATOR, Agent
from operations.conf import ktrdr_setting
from operations.exceptions import InvalidInput, NotFound

logger = logging.getLogger(__name__)


def validate_agent(name: str, base_url: str) -> tuple[str, str]:
    name = (name or "").strip()
    base_url = (base_url or "").strip().rstrip("/")
    try:
        AGENT_NAME_VALIDATOR(name)
    except ValidationError as exc:
        raise InvalidInput(f"agent name {name!r}: {exc.messages[0]}", field="name") from None
    parsed = urlparse(base_url)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise InvalidInput(f"agent URL {base_url!r} must be http(s)://host:port", field="base_url")
    if parsed.path not in {"", "/"} or parsed.query or parsed.fragment:
        raise InvalidInput(f"agent URL {base_url!r} must not have a path", field="base_url")
    return name, base_url


def parse_agents_setting(raw: str) -> tuple[dict[str, str], list[str]]:
    """`"gpu1=http://h:8101,ib1=http://h:8102"` → ({name: url}, [problems])."""
    agents: dict[str, str] = {}
    problems: list[str] = []
    for raw_entry in (raw or "").split(","):
        entry = raw_entry.strip()
        if not entry:
            continue
        name, sep, url = entry.partition("=")
        if not sep:
            problems.append(f"{entry!r}: expected name=url")
            continue
        try:
            name, url = validate_agent(name, url)
        except InvalidInput as exc:
            problems.append(exc.message)
            continue
        agents[name] = url
    return agents, problems


def agents_sync_from_settings() -> list[str]:
    """Make the registry contain every agent named in `KTRDR_AGENTS` (URL updated if it
    changed). Cheap when nothing changed (one query); returns the problems found, if any."""
    configured, problems = parse_agents_setting(str(ktrdr_setting("AGENTS") or ""))
    for problem in problems:
        logger.warning("KTRDR_AGENTS: %s (entry ignored)", problem)
    if not configured:
        return problems
    existing = {a.name: a for a in Agent.objects.filter(name__in=list(configured))}
    for name, url in configured.items():
        agent = existing.get(name)
        if agent is not None and agent.base_url == url:
            continue
        with transaction.atomic():
            agent, created = Agent.objects.get_or_create(
                name=name, defaults={"base_url": url, "origin": "settings"}
            )
            if not created and agent.base_url != url:
                agent.base_url = url
                agent.health = None
                agent.health_pulled_at = None
                agent.save(update_fields=["base_url", "health", "health_pulled_at"])
        logger.info("agent %s registered from KTRDR_AGENTS (%s)", name, url)
    return problems


@transaction.atomic
def agent_add(*, name: str, base_url: str, origin: str = "command") -> tuple[Agent, bool]:
    """Add an agent, or update its URL (idempotent); returns (agent, created)."""
    name, base_url = validate_agent(name, base_url)
    agent, created = Agent.objects.get_or_create(
        name=name, defaults={"base_url": base_url, "origin": origin}
    )
    if not created and agent.base_url != base_url:
        agent.base_url = base_url
        agent.health = None
        agent.health_pulled_at = None
        agent.save(update_fields=["base_url", "health", "health_pulled_at"])
    return agent, created


@transaction.atomic
def agent_set_enabled(*, name: str, enabled: bool) -> Agent:
    agent = Agent.objects.select_for_update().filter(name=name).first()
    if agent is None:
        raise NotFound(f"Agent {name!r} is not registered", details={"name": name})
    agent.enabled = enabled
    agent.save(update_fields=["enabled"])
    return agent


@transaction.atomic
def agent_record_health(
    *, name: str, health: dict[str, Any] | None, error: str = ""
) -> Agent | None:
    """Store a pulled health snapshot, or the error of a failed pull (the last good snapshot is
    kept so pages can show what the agent was, but `last_error` marks it unreachable)."""
    agent = Agent.objects.select_for_update().filter(name=name).first()
    if agent is None:
        return None
    now = timezone.now()
    agent.health_pulled_at = now
    if health is not None:
        agent.health = health
        agent.capabilities = sorted({str(c) for c in health.get("capabilities", [])})
        agent.last_error = ""
    else:
        agent.last_error = error[:2000] or "unknown error"
        agent.last_error_at = now
    agent.save(
        update_fields=["health_pulled_at", "health", "capabilities", "last_error", "last_error_at"]
    )
    return agent
