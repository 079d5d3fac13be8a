"""What counts as an outage of a service the product depends on, and how it is said.

The database and the shared cache (Redis) can be down or unreachable. That is not a bug in the
request, so it is never a 500 with a stack trace: the API answers 503 with the error envelope,
pages answer a readable 503, and reads of operations fall back to the database when only the
cache is gone (`operations.cache`). `describe` names the service and the cause in one line,
without secrets from connection strings.
"""

from __future__ import annotations

import logging
import re
import time

from django.db.utils import InterfaceError, OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

DATABASE_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError)
CACHE_ERRORS: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError)
OUTAGE_ERRORS = DATABASE_ERRORS + CACHE_ERRORS
# A busy SQLite file is an operational error too, but it is contention, not an outage.
_NOT_AN_OUTAGE = re.compile(r"database is locked|database table is locked", re.IGNORECASE)
_SECRET = re.compile(r"(password|passwd)=\S+", re.IGNORECASE)
_LOG_EVERY_SECONDS = 10.0
_last_logged: dict[str, float] = {}


def is_outage(exc: BaseException) -> bool:
    return isinstance(exc, OUTAGE_ERRORS) and not _NOT_AN_OUTAGE.search(str(exc))


def service_of(exc: BaseException) -> str:
    return "cache" if isinstance(exc, CACHE_ERRORS) else "database"


def describe(exc: BaseException) -> str:
    """`"the database is unavailable: connection refused"` — the first line of the cause."""
    cause = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    cause = _SECRET.sub(r"\1=…", cause)[:300]
    return f"the {service_of(exc)} is unavailable: {cause}"


def log_outage(exc: BaseException, where: str) -> None:
    """A warning per service at most every few seconds (an outage fails every request)."""
    service = service_of(exc)
    now = time.monotonic()
    if now - _last_logged.get(service, -_LOG_EVERY_SECONDS) >= _LOG_EVERY_SECONDS:
        _last_logged[service] = now
        logger.warning("%s (%s)", describe(exc), where)
