"""DRF's session authentication without its CSRF pass on the methods CSRF never checks.

`SessionAuthentication.enforce_csrf` runs Django's CSRF check on every request: for GET, HEAD,
OPTIONS and TRACE that check accepts unconditionally (`CsrfViewMiddleware.process_view`), after
reading the token cookie again (the middleware in front already did). So those methods skip it;
every other method is checked exactly as DRF does.
"""

from __future__ import annotations

from drf_spectacular.authentication import SessionScheme
from rest_framework.authentication import SessionAuthentication as DRFSessionAuthentication
from rest_framework.request import Request

# The methods Django's CsrfViewMiddleware.process_view accepts without looking at a token.
CSRF_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class SessionAuthentication(DRFSessionAuthentication):
    def enforce_csrf(self, request: Request) -> None:
        if request.method in CSRF_SAFE_METHODS:
            return
        super().enforce_csrf(request)


class SessionAuthenticationScheme(SessionScheme):
    """The OpenAPI `cookieAuth` scheme for it (drf-spectacular matches the exact class)."""

    target_class = "operations.api.authentication.SessionAuthentication"
