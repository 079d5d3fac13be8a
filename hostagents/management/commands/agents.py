"""`manage.py agents list | add NAME URL | check [NAME…] | enable NAME | disable NAME |
cert DIR --host NAME…`

Thin wrapper over the registry services and selectors; `check` pulls health now (the same pull
pages and selection use) and exits non-zero if any checked agent is unreachable. `cert` writes a
self-signed certificate and key for an agent served over HTTPS (`hostagents.tls`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from hostagents import selectors, services
from hostagents.tls import CERT_DAYS, TLSConfigError, write_self_signed
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
        cert = sub.add_parser(
            "cert", help="write a self-signed agent.crt/agent.key for run_agent --tls-cert/-key"
        )
        cert.add_argument("folder", help="where agent.crt and agent.key (0600) are written")
        cert.add_argument(
            "--host",
            action="append",
            required=True,
            help="a name or IP address the backend reaches the agent by (repeatable)",
        )
        cert.add_argument("--days", type=int, default=CERT_DAYS, help="validity in days")
        cert.add_argument("--force", action="store_true", help="replace an existing pair")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, f"_{options['action']}")(options)
        except KtrdrError as exc:
            raise CommandError(exc.message) from None
        except TLSConfigError as exc:
            raise CommandError(str(exc)) from None

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

    def _cert(self, options: dict[str, Any]) -> None:
        cert, key = write_self_signed(
            Path(options["folder"]).expanduser().resolve(),
            options["host"],
            days=options["days"],
            overwrite=options["force"],
        )
        self.stdout.write(self.style.SUCCESS(f"wrote {cert} and {key}"))
        self.stdout.write(
            f"agent:   manage.py run_agent --host 0.0.0.0 --tls-cert {cert} --tls-key {key} …\n"
            f"backend: copy {cert.name} there, set KTRDR_AGENT_CA_BUNDLE to the copy and register "
            f"https://{options['host'][0]}:PORT"
        )
