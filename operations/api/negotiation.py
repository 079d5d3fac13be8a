"""Content negotiation with a short path for what API clients send.

DRF's `DefaultContentNegotiation` parses the Accept header and every renderer's media type on
each request: most of what DRF itself adds to a cheap answer (benchmarks/bench_views.py, "DRF's
own floor"). Clients that poll the API send no Accept, `*/*` or `application/json`, and ask for
no `?format=`: for them DRF's answer is always the first renderer (JSON) and its media type, so
that is returned without parsing. Everything else (a browser asking for HTML, a format suffix or
query parameter, media-type parameters, an unacceptable type) goes through DRF unchanged.
"""

from __future__ import annotations

from typing import Any

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request

_PLAIN_ACCEPTS = frozenset({"*/*", "application/json"})


class JSONFirstNegotiation(DefaultContentNegotiation):
    def select_renderer(
        self, request: Request, renderers: list[Any], format_suffix: str | None = None
    ) -> tuple[Any, str]:
        if (
            renderers
            and renderers[0].media_type == "application/json"
            and not format_suffix
            and request.META.get("HTTP_ACCEPT", "*/*").strip() in _PLAIN_ACCEPTS
            and self.settings.URL_FORMAT_OVERRIDE not in request.query_params
        ):
            return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)
