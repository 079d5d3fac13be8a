"""The project's Redis cache backend (ktrdr_site.redis_cache) behaves as Django's and builds one
client per connection pool. Runs where Redis answers (CI's second run sets REDIS_URL)."""

from __future__ import annotations

import os
import threading

import pytest

from ktrdr_site.redis_cache import PooledRedisCache

pytestmark = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="needs a Redis server (REDIS_URL)"
)


@pytest.fixture
def redis_cache():
    cache = PooledRedisCache(
        os.environ["REDIS_URL"],
        {"KEY_PREFIX": f"ktrdr-test-{os.getpid()}", "OPTIONS": {"socket_timeout": 2}},
    )
    yield cache
    cache.clear()
    cache.close()


def test_it_stores_reads_and_expires_like_django(redis_cache):
    assert redis_cache.get("missing", "default") == "default"
    redis_cache.set("entry", (1.5, {"status": "running"}), 30)
    assert redis_cache.get("entry") == (1.5, {"status": "running"})
    assert redis_cache.add("entry", "other") is False
    assert redis_cache.add("lock", "token", 30) is True
    redis_cache.set("n", 1, 30)
    assert redis_cache.incr("n") == 2
    redis_cache.delete("entry")
    assert redis_cache.get("entry") is None
    redis_cache.set("gone", 1, 0)  # a timeout of 0 deletes, as in Django
    assert redis_cache.get("gone") is None


def test_one_client_serves_every_call_from_every_thread(redis_cache):
    first = redis_cache._cache.get_client()
    assert redis_cache._cache.get_client(write=True) is first
    seen = []

    def work(i: int) -> None:
        for k in range(50):
            redis_cache.set(f"t{i}", k, 30)
            assert redis_cache.get(f"t{i}") == k
        seen.append(redis_cache._cache.get_client())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(client is first for client in seen)


def test_a_dropped_connection_is_made_again_on_the_next_call(redis_cache):
    redis_cache.set("kept", "value", 30)
    client = redis_cache._cache.get_client()
    client.connection.disconnect()  # as a Redis restart would leave it
    assert redis_cache.get("kept") == "value"
    assert redis_cache._cache.get_client() is client
