"""ASGI entry point (daphne): Django's WSGI handler in a pool of threads (ktrdr_site.threaded_wsgi),
behind the request-body cap."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ktrdr_site.settings")

django_wsgi_app = get_wsgi_application()

from django.conf import settings  # noqa: E402  (needs Django set up first)

from ktrdr_site.bodylimit import RequestBodyLimit, install_in_daphne  # noqa: E402
from ktrdr_site.threaded_wsgi import ThreadedWSGI  # noqa: E402

install_in_daphne(settings.KTRDR_MAX_REQUEST_BYTES)
application = RequestBodyLimit(
    ThreadedWSGI(
        django_wsgi_app,
        max_body_bytes=settings.KTRDR_MAX_REQUEST_BYTES,
        workers=settings.KTRDR_HTTP_THREADS,
    ),
    limit=lambda: settings.KTRDR_MAX_REQUEST_BYTES,
)
