"""Bearer-token authentication of an agent's API (`KTRDR_ROLE=agent` selects it in settings).

Every agent endpoint requires `Authorization: Bearer <KTRDR_AGENT_TOKEN>`; the comparison is
constant-time (`hmac.compare_digest`) so response timing says nothing about the token. An agent
with no token configured rejects everything rather than serving an open API.

The authenticated principal is a real (inactive-for-login) `User` named `ktrdr-backend`, because
the shared operations code records `created_by` as a foreign key and DRF's `IsAuthenticated`
needs an authenticated user.
"""

from __future__ import annotations

import hmac
import threading
from typing import Any

from django.contrib.auth import get_user_model
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from operations.conf import ktrdr_setting

SERVICE_USERNAME = "ktrdr-backend"

_user_lock = threading.Lock()
_service_user_cached: Any = None


def _service_user() -> Any:
    """The service user, looked up once per process: it never changes, and not touching the
    database here lets a cached operation read be answered without opening a connection."""
    global _service_user_cached

    if _service_user_cached is not None:
        return _service_user_cached
    user_model = get_user_model()
    with _user_lock:
        user, created = user_model.objects.get_or_create(
            username=SERVICE_USERNAME, defaults={"is_active": True}
        )
        if created:
            # Never usable to log in anywhere: it only stands for "the backend, by token".
            user.set_unusable_password()
            user.save(update_fields=["password"])
        _service_user_cached = user
        return user


def token_matches(presented: str, expected: str) -> bool:
    if not expected:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


class AgentTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, str] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None  # → 401 with WWW-Authenticate from authenticate_header
        parts = header.split()
        if len(parts) != 2 or parts[0] != self.keyword:
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <agent token>'")
        if not token_matches(parts[1], str(ktrdr_setting("AGENT_TOKEN") or "")):
            raise exceptions.AuthenticationFailed("Invalid agent token")
        return _service_user(), parts[1]

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="ktrdr-agent"'
