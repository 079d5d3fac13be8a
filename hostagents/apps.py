from __future__ import annotations

from django.apps import AppConfig


class HostagentsConfig(AppConfig):
    name = "hostagents"
    verbose_name = "Host agents"
