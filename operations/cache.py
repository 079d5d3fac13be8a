"""The TTL cache of pulled operations and the single-flight refresh lock.

Both live in Django's default cache: process memory in the embedded setup, Redis when
`REDIS_URL` is set — then every backend process sees the same refresh time and the same lock, so
several processes cause at most one refresh per operation per TTL window.

The refresh time is stored *in* the value (not as the cache timeout) because Redis timeouts are
whole seconds and the TTL may be fractional.
"""

from __future__ import annotations

import time
import uuid

from django.core.cache import cache

from operations.models import Operation

# Terminal operations never change, so they may stay cached longer than the refresh TTL.
TERMINAL_CACHE_SECONDS = 300
LOCK_SECONDS = 30
_PREFIX = "ktrdr:ops:v1"


def _entry_key(operation_id: str) -> str:
    return f"{_PREFIX}:entry:{operation_id}"


def _lock_key(operation_id: str) -> str:
    return f"{_PREFIX}:lock:{operation_id}"


def get_entry(operation_id: str) -> tuple[float, Operation] | None:
    entry = cache.get(_entry_key(operation_id))
    if not isinstance(entry, tuple) or len(entry) != 2:
        return None
    return entry


def put(operation: Operation, ttl: float, *, stamp: float | None = None) -> None:
    """Cache `operation` as pulled at `stamp` (default now); readers treat it as fresh for one
    TTL from that stamp."""
    timeout = TERMINAL_CACHE_SECONDS if operation.is_terminal else max(int(ttl) + 2, 2)
    at = time.time() if stamp is None else stamp
    cache.set(_entry_key(operation.operation_id), (at, operation), timeout)


def invalidate(operation_id: str) -> None:
    cache.delete(_entry_key(operation_id))


def try_lock(operation_id: str) -> str | None:
    """Take the refresh lock for one operation; returns a token, or None if someone holds it."""
    token = uuid.uuid4().hex
    if cache.add(_lock_key(operation_id), token, LOCK_SECONDS):
        return token
    return None


def unlock(operation_id: str, token: str) -> None:
    # Only the holder releases; an expired lock taken over by another reader is left alone.
    if cache.get(_lock_key(operation_id)) == token:
        cache.delete(_lock_key(operation_id))
