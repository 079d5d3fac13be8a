"""What a polled page fragment needs, for the apps' own pages (static/ktrdr/live.js polls them).

A page marks the element to re-fetch with `data-poll-url`, `data-poll-seconds` and `data-etag`;
the poll names that element (`HX-Target`). The view answers 304 with nothing rendered when the
ETag, made from what the fragment shows (not from its rendering), is the one the poll sent back,
and otherwise only the fragment, with its ETag (docs/architecture.md §4, viewers).
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.cache import get_conditional_response, patch_cache_control


def etag_of(*parts: Any) -> str:
    """A strong ETag of what a fragment shows."""
    return '"' + hashlib.blake2b(repr(parts).encode(), digest_size=12).hexdigest() + '"'


def is_poll(request: HttpRequest, target: str) -> bool:
    """Whether `request` is live.js polling the element `target` (not a page load)."""
    return bool(getattr(request, "htmx", None)) and request.htmx.target == target


def not_modified(request: HttpRequest, etag: str) -> HttpResponse | None:
    """304 when the poll sent back `etag` (nothing changed), else None."""
    return get_conditional_response(request, etag=etag)


def fragment(response: HttpResponse, etag: str) -> HttpResponse:
    """A polled fragment's answer: its ETag, private, revalidated every time."""
    response["ETag"] = etag
    patch_cache_control(response, private=True, no_cache=True)
    return response
