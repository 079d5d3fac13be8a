"""The TTL cache of pulled operations and the single-flight refresh lock.

Both live in Django's default cache: process memory in the embedded setup, Redis when
`REDIS_URL` is set — then every backend process sees the same refresh time and the same lock, so
several processes cause at most one refresh per operation per TTL window.

The refresh time is stored *in* the value (not as the cache timeout) because Redis timeouts are
whole seconds and the TTL may be fractional.

A cache that is down never fails a read: every call here treats it as empty (a miss, a lock
taken, nothing stored) and logs the outage, so reads fall back to the database — uncached and
without cross-process single flight — until it is back.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.cache import cache

from operations.models import Operation
from operations.outages import CACHE_ERRORS, log_outage

T = TypeVar("T")

# Terminal operations never change, so they may stay cached longer than the refresh TTL.
TERMINAL_CACHE_SECONDS = 300
LOCK_SECONDS = 30
_PREFIX = "ktrdr:ops:v1"


def _entry_key(operation_id: str) -> str:
    return f"{_PREFIX}:entry:{operation_id}"


def _lock_key(operation_id: str) -> str:
    return f"{_PREFIX}:lock:{operation_id}"


def _safely(call: Callable[[], T], fallback: T, where: str) -> T:
    try:
        return call()
    except CACHE_ERRORS as exc:
        log_outage(exc, f"operations cache: {where}")
        return fallback


def get_entry(operation_id: str) -> tuple[float, Operation] | None:
    entry: Any = _safely(lambda: cache.get(_entry_key(operation_id)), None, "get")
    if not isinstance(entry, tuple) or len(entry) != 2:
        return None
    return entry


def put(operation: Operation, ttl: float, *, stamp: float | None = None) -> None:
    """Cache `operation` as pulled at `stamp` (default now); readers treat it as fresh for one
    TTL from that stamp."""
    timeout = TERMINAL_CACHE_SECONDS if operation.is_terminal else max(int(ttl) + 2, 2)
    at = time.time() if stamp is None else stamp
    _safely(
        lambda: cache.set(_entry_key(operation.operation_id), (at, operation), timeout),
        None,
        "set",
    )


def invalidate(operation_id: str) -> None:
    _safely(lambda: cache.delete(_entry_key(operation_id)), None, "delete")


def try_lock(operation_id: str) -> str | None:
    """Take the refresh lock for one operation; returns a token, or None if someone holds it."""
    return try_lock_key(_lock_key(operation_id))


def unlock(operation_id: str, token: str) -> None:
    unlock_key(_lock_key(operation_id), token)


def try_lock_key(key: str, seconds: int = LOCK_SECONDS) -> str | None:
    """A single-flight lock under any cache key (other apps' pulls use it too)."""
    token = uuid.uuid4().hex
    # No cache, no lock to share: this caller goes ahead (row locks keep writes consistent).
    if _safely(lambda: cache.add(key, token, seconds), True, "lock"):
        return token
    return None


def unlock_key(key: str, token: str) -> None:
    # Only the holder releases; an expired lock taken over by another caller is left alone.
    if _safely(lambda: cache.get(key), None, "unlock") == token:
        _safely(lambda: cache.delete(key), None, "unlock")
