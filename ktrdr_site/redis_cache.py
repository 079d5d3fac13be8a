"""Django's Redis cache backend, with one single-connection `redis.Redis` client per pool.

Django's `RedisCacheClient.get_client` builds a new `redis.Redis` around the pool on every cache
call, and redis-py's constructor registers its ~170 response callbacks each time: on the
operations API's hot path (one cache read per poll) that was a third of what the read cost
(benchmarks/bench_views.py, PostgreSQL + Redis). Here each pool gets one client, built once.

That client keeps one connection (`single_connection_client`) instead of taking one from the
pool and giving it back around every command (a lock, a readiness poll: a quarter of a GET's
CPU). Django gives every thread its own cache backend, so the connection is a thread's own; a
backend shared by threads stays correct, since redis-py serialises commands on a shared
connection with a lock. A connection that breaks is reconnected on the next command; a Redis
that is down fails the call (no client is kept), as Django's backend does. The same pools,
timeouts, serializer and keys.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class _OneClientPerPool(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            # Connects now (and raises if Redis is down). A race builds two; both work.
            client = self._client(connection_pool=pool, single_connection_client=True)
            self._clients[id(pool)] = client
        return client


class PooledRedisCache(RedisCache):
    """`django.core.cache.backends.redis.RedisCache` keeping its clients (see the module)."""

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _OneClientPerPool
