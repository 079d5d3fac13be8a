"""`manage.py run_agent --roles training,ib --port 8101 [--host 127.0.0.1] [--home DIR]
[--tls-cert FILE --tls-key FILE]`

Serves this same project as a host agent: the agent URLconf (operations API, start endpoints,
artifacts, health), bearer-token auth (`KTRDR_AGENT_TOKEN`, required), its own SQLite database
under `--home` (migrated on start, skipped when up to date), daphne in this process — over HTTPS
when given a certificate and its key (`hostagents.tls`), else plain HTTP. The GPU probe
(which imports torch) starts first, in the background: health answers as soon as the agent
listens and says `"probing": true` until it is done (`hostagents.health`).

Settings are fixed at import time, so the command first re-executes itself with the agent's
environment (`KTRDR_ROLE=agent`, `KTRDR_URLCONF`, `KTRDR_HOME`, roles, name) — same PID, so a
supervisor or test that started it can signal it — and then migrates and serves.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daphne.server import Server
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.wsgi import get_wsgi_application
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

from hostagents.auth import _service_user
from hostagents.blobs import MAX_BLOB_BYTES
from hostagents.health import start_gpu_probe
from hostagents.tls import ServerTLS, TLSConfigError, endpoint, server_tls
from ktrdr_site.threaded_wsgi import ThreadedWSGI
from operations.execution import operation_cancel
from operations.local import local_runs

logger = logging.getLogger("hostagents.agent")

ROLES = {"training", "ib"}
MIN_TOKEN_CHARS = 32
AGENT_URLCONF = "hostagents.agent_urls"
AGENT_DEFAULT_TTL = "0.25"
BACKEND_ONLY_ENV = ("DATABASE_URL", "REDIS_URL", "KTRDR_CACHE_PREFIX")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _needs_migrations() -> bool:
    connection = connections[DEFAULT_DB_ALIAS]
    executor = MigrationExecutor(connection)
    return bool(executor.migration_plan(executor.loader.graph.leaf_nodes()))


@dataclass(frozen=True)
class _Serving:
    """What the agent serves, and where: the same before and after it re-executes itself."""

    roles: list[str]
    port: int
    host: str
    home: Path
    name: str
    tls: ServerTLS | None


class Command(BaseCommand):
    help = "Run a host agent: the operations API for the backend, next to GPU or IB hardware."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--roles", default="training", help="comma list of: training, ib")
        parser.add_argument("--port", type=int, default=8101)
        parser.add_argument(
            "--host", default="127.0.0.1", help="interface to bind (default loopback only)"
        )
        parser.add_argument("--home", default="", help="data folder (default var/agents/NAME)")
        parser.add_argument("--name", default="", help="agent name shown in health")
        parser.add_argument(
            "--tls-cert",
            default=os.environ.get("KTRDR_AGENT_TLS_CERT", ""),
            help="serve HTTPS with this PEM certificate (chain) file (env KTRDR_AGENT_TLS_CERT)",
        )
        parser.add_argument(
            "--tls-key",
            default=os.environ.get("KTRDR_AGENT_TLS_KEY", ""),
            help="the certificate's unencrypted PEM private key (env KTRDR_AGENT_TLS_KEY)",
        )
        parser.add_argument(
            "--debug",
            action="store_true",
            help="run with Django's DEBUG on (debug pages list every URL: never on a network)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        roles = sorted({r.strip() for r in options["roles"].split(",") if r.strip()})
        unknown = set(roles) - ROLES
        if unknown:
            raise CommandError(f"unknown roles {sorted(unknown)}; use {sorted(ROLES)}")
        port = options["port"]
        if not 0 < port < 65536:
            raise CommandError("--port must be 1-65535")
        host = options["host"]
        name = options["name"] or f"agent-{port}"
        try:
            tls = server_tls(options["tls_cert"], options["tls_key"])
        except TLSConfigError as exc:
            raise CommandError(str(exc)) from None
        home = Path(options["home"] or Path(settings.BASE_DIR) / "var" / "agents" / name).resolve()
        token = os.environ.get("KTRDR_AGENT_TOKEN", "")
        if not token:
            raise CommandError(
                "KTRDR_AGENT_TOKEN is not set: an agent refuses to serve without a token"
            )
        if len(token) < MIN_TOKEN_CHARS:
            raise CommandError(
                f"KTRDR_AGENT_TOKEN has {len(token)} characters; an agent needs at least "
                f"{MIN_TOKEN_CHARS} (e.g. python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))')"
            )
        wanted = {
            "KTRDR_ROLE": "agent",
            "KTRDR_URLCONF": AGENT_URLCONF,
            "KTRDR_HOME": str(home),
            "KTRDR_AGENT_ROLES": ",".join(roles),
            "KTRDR_AGENT_NAME": name,
            # DEBUG off unless asked: its error pages would show settings and every URL.
            "DJANGO_DEBUG": "1" if options["debug"] else "0",
        }
        if not os.environ.get("KTRDR_OPERATIONS_CACHE_TTL"):
            # The backend's TTL already limits how often an agent is asked (single flight per
            # operation); a short agent TTL keeps the second level from doubling the staleness.
            wanted["KTRDR_OPERATIONS_CACHE_TTL"] = AGENT_DEFAULT_TTL
        if not _is_loopback(host) and not os.environ.get("DJANGO_ALLOWED_HOSTS"):
            # Reachable from other machines under names we cannot know; the token guards it.
            wanted["DJANGO_ALLOWED_HOSTS"] = "*"
        # An agent keeps its own SQLite database under --home and its cache in process memory:
        # one started beside the backend must not share the backend's rows or cache entries
        # (the same operation ids and cache keys would mix). So these are never inherited.
        inherited = [k for k in BACKEND_ONLY_ENV if os.environ.get(k)]
        if inherited or any(os.environ.get(k) != v for k, v in wanted.items()):
            self._reexec(wanted, _Serving(roles, port, host, home, name, tls))
            return  # not reached
        if tls is None and not _is_loopback(host):
            self.stderr.write(
                f"warning: serving plain HTTP on {host}: the token and your data cross the "
                "network in clear text; give --tls-cert/--tls-key or put a TLS proxy in front "
                "(docs/agents.md)"
            )
        self._serve(_Serving(roles, port, host, home, name, tls))

    def _reexec(self, wanted: dict[str, str], serving: _Serving) -> None:
        tls = serving.tls
        env = {k: v for k, v in os.environ.items() if k not in BACKEND_ONLY_ENV}
        env.update(wanted)
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        argv = [
            sys.executable,
            manage,
            "run_agent",
            "--roles",
            ",".join(serving.roles),
            "--port",
            str(serving.port),
            "--host",
            serving.host,
            "--home",
            str(serving.home),
            "--name",
            serving.name,
            *(["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)] if tls else []),
            *(["--debug"] if wanted.get("DJANGO_DEBUG") == "1" else []),
        ]
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, argv, env)  # noqa: S606 - fixed argv, no shell

    def _serve(self, serving: _Serving) -> None:
        roles, port, host, home = serving.roles, serving.port, serving.host, serving.home
        name, tls = serving.name, serving.tls
        home.mkdir(parents=True, exist_ok=True)
        # torch takes seconds to import: off the request path, while the database gets ready.
        start_gpu_probe()
        if _needs_migrations():
            call_command("migrate", interactive=False, verbosity=0)
        _service_user()
        # Input blobs arrive as raw bodies: the largest one plus room for its headers.
        application = ThreadedWSGI(
            get_wsgi_application(), max_body_bytes=MAX_BLOB_BYTES + (1 << 20), name="agent-http"
        )

        def ready() -> None:
            self.stdout.write(
                f"agent {name} ready on {'https' if tls else 'http'}://{host}:{port} "
                f"roles={','.join(roles) or '-'} home={home}"
            )
            self.stdout.flush()

        server = Server(
            application=application,
            endpoints=[endpoint(host, port, tls)],
            signal_handlers=True,
            server_name="ktrdr-agent",
            ready_callable=ready,
            application_close_timeout=5,
        )
        try:
            server.run()
        finally:
            self._stop_work()

    def _stop_work(self) -> None:
        """On shutdown, running work is cancelled (recorded as cancelled, not left running)."""
        for operation_id in local_runs.active_ids():
            try:
                # Through the one cancel path, so the reason is on the row the backend reads.
                operation_cancel(operation_id=operation_id, reason="agent shutting down")
            except Exception:
                local_runs.cancel(operation_id, "agent shutting down")
        local_runs.wait_idle(timeout=10.0)
