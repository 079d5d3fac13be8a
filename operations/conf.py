"""One accessor for the `KTRDR` settings dict, with the defaults in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    "OPERATIONS_CACHE_TTL": 1.0,
    "LOCAL_EXECUTION": True,
    "LOCAL_WORKERS": 2,
    "DATA_DIR": Path("var/data"),
    "MODELS_DIR": Path("var/models"),
    "STRATEGIES_DIR": Path("strategies"),
    "IB_HOST": "",
    "IB_PORT": 4002,
    "IB_CLIENT_ID": 1,
    "AGENTS": "",
    "AGENT_TOKEN": "",
    "TRAINING_DEFAULT_MODE": "auto",
    "DEMO_USERNAME": "demo",
    "OPERATION_LOG_MAX_LINES": 5000,
    "PRUNE_OLDER_THAN": "30d",
}


_NO_DEFAULT = object()


def ktrdr_setting(name: str, default: Any = _NO_DEFAULT) -> Any:
    """Return the KTRDR knob `name`, read on every call so tests can override settings.

    Apps keep the defaults of their own knobs and pass them as `default`.
    """
    configured = getattr(settings, "KTRDR", {})
    if name in configured:
        return configured[name]
    if default is not _NO_DEFAULT:
        return default
    try:
        return DEFAULTS[name]
    except KeyError:
        raise KeyError(f"unknown KTRDR setting {name!r}") from None
