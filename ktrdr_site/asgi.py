"""ASGI entry point (daphne). HTTP goes to Django; the channel layer is configured in settings."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ktrdr_site.settings")

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402  (needs Django set up first)
from django.conf import settings  # noqa: E402

from ktrdr_site.bodylimit import RequestBodyLimit, install_in_daphne  # noqa: E402

install_in_daphne(settings.KTRDR_MAX_REQUEST_BYTES)
application = ProtocolTypeRouter(
    {"http": RequestBodyLimit(django_asgi_app, limit=lambda: settings.KTRDR_MAX_REQUEST_BYTES)}
)
