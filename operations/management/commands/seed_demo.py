"""`manage.py seed_demo` — the demo login and demo content `make run` starts with. Idempotent.

The demo user's password is random and printed once, when the user is created; later runs say
how to reset it instead of printing anything secret again.
"""

from __future__ import annotations

import importlib
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from rest_framework.authtoken.models import Token

from operations.conf import ktrdr_setting
from operations.countdown import countdown_start
from operations.local import local_runs
from operations.models import Operation

# Each app that has demo content offers `seed_demo_data()` in its services module; it returns the
# demo objects there are (made now or kept from an earlier run), printed by their names.
DEMO_SEEDERS = ("marketdata.services", "training.services")


class Command(BaseCommand):
    help = "Create the demo user (password printed once) and the demo content."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-content", action="store_true", help="only the demo user")
        parser.add_argument(
            "--superuser",
            action="store_true",
            help="make the demo user a superuser (the admin, cancelling anyone's work)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self._ensure_user(superuser=options["superuser"])
        if not options["no_content"]:
            self._seed_content()

    def _ensure_user(self, *, superuser: bool) -> None:
        username = ktrdr_setting("DEMO_USERNAME")
        user_model = get_user_model()
        if user_model.objects.filter(username=username).exists():
            self.stdout.write(
                f"Demo user '{username}' exists (its password was printed when it was created; "
                f"reset it with: python manage.py changepassword {username})."
            )
            return
        password = secrets.token_urlsafe(12)
        # Least privilege: a plain user unless asked; it starts, follows and cancels its own work.
        create = (
            user_model.objects.create_superuser if superuser else user_model.objects.create_user
        )
        user = create(username=username, email="", password=password)
        token = Token.objects.create(user=user)
        bar = "=" * 64
        self.stdout.write(
            self.style.SUCCESS(
                f"\n{bar}\n  Demo login (shown once):  {username} / {password}\n"
                f"  API token:                {token.key}\n"
                f"  Open http://127.0.0.1:8000/ and log in.\n{bar}\n"
            )
        )

    def _seed_content(self) -> None:
        for module_name in DEMO_SEEDERS:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            seeder = getattr(module, "seed_demo_data", None)
            if seeder is not None:
                names = ", ".join(str(item) for item in seeder()) or "none"
                self.stdout.write(f"Demo content of {module_name.partition('.')[0]}: {names}")
        if not Operation.objects.filter(operation_type="countdown").exists():
            op = countdown_start(steps=8, step_seconds=0.05)
            local_runs.wait_idle(timeout=30)
            self.stdout.write(f"Demo countdown {op.operation_id} finished.")
