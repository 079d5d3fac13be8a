"""Django's Redis cache backend, with one `redis.Redis` client per connection pool.

Django's `RedisCacheClient.get_client` builds a new `redis.Redis` around the pool on every cache
call, and redis-py's constructor registers its ~170 response callbacks each time: on the
operations API's hot path (one cache read per poll) that was a third of what the read cost
(benchmarks/bench_views.py, PostgreSQL + Redis). A client holds no connection of its own (the
pool does) and is thread-safe, so building it once per pool changes nothing else: the same
pools, timeouts, serializer and keys.
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
            # A race builds two; either serves (the pool is the shared part).
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class PooledRedisCache(RedisCache):
    """`django.core.cache.backends.redis.RedisCache` reusing its clients (see the module)."""

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _OneClientPerPool
