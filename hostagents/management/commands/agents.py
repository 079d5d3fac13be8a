"""`manage.py agents list | add NAME URL | check [NAME…] | enable NAME | disable NAME`

Thin wrapper over the registry services and selectors; `check` pulls health now (the same pull
pages and selection use) and exits non-zero if any checked agent is unreachable.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from hostagents import selectors, services
from operations.exceptions import KtrdrError


class Command(BaseCommand):
    help = "List, add and check host agents."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="registered agents with their last pulled health")
        add = sub.add_parser("add", help="register (or re-point) an agent")
        add.add_argument("name")
        add.add_argument("url")
        check = sub.add_parser("check", help="pull health now")
        check.add_argument("names", nargs="*")
        for action in ("enable", "disable"):
            sub.add_parser(action).add_argument("name")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, f"_{options['action']}")(options)
        except KtrdrError as exc:
            raise CommandError(exc.message) from None

    def _list(self, options: dict[str, Any]) -> None:
        agents = selectors.agent_list(pull_health=False)
        if not agents:
            self.stdout.write("no agents registered (KTRDR_AGENTS, admin, or `agents add`)")
        for a in agents:
            state = "disabled" if not a.enabled else ("ok" if a.reachable else "unreachable")
            if a.health_pulled_at is None and a.enabled:
                state = "not checked"
            caps = ",".join(a.capabilities) or "-"
            self.stdout.write(f"{a.name:<16} {a.base_url:<36} {state:<12} {caps}")

    def _add(self, options: dict[str, Any]) -> None:
        agent, created = services.agent_add(name=options["name"], base_url=options["url"])
        verb = "added" if created else "updated"
        self.stdout.write(self.style.SUCCESS(f"{verb} {agent.name} → {agent.base_url}"))

    def _check(self, options: dict[str, Any]) -> None:
        names = options["names"] or [a.name for a in selectors.agent_list(pull_health=False)]
        if not names:
            raise CommandError("no agents to check")
        failed = 0
        for name in names:
            agent = selectors.agent_get(name=name, pull_health=False)
            agent = selectors.agent_pull_health(agent, force=True)
            if agent.reachable:
                health = agent.health or {}
                gpu = (health.get("gpu") or {}).get("device_name") or "no GPU"
                self.stdout.write(
                    self.style.SUCCESS(
                        f"{name}: ok · {','.join(agent.capabilities) or '-'} · {gpu} · "
                        f"{health.get('running_count', 0)} running · v{health.get('version')}"
                    )
                )
            else:
                failed += 1
                self.stdout.write(self.style.ERROR(f"{name}: {agent.last_error}"))
        if failed:
            raise CommandError(f"{failed} of {len(names)} agents unreachable")

    def _enable(self, options: dict[str, Any]) -> None:
        services.agent_set_enabled(name=options["name"], enabled=True)
        self.stdout.write(f"enabled {options['name']}")

    def _disable(self, options: dict[str, Any]) -> None:
        services.agent_set_enabled(name=options["name"], enabled=False)
        self.stdout.write(f"disabled {options['name']}")
