"""Cache-aside over real Redis: hits, misses, invalidation, stampedes and outages."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from services.common.cache import Cache
from services.common.redis import RedisGuard, create_redis
from tests.support.infra import Infra


class CountingLoader:
    def __init__(self, value: bytes | None, delay: float = 0.0) -> None:
        self.value = value
        self.delay = delay
        self.calls = 0

    async def __call__(self) -> bytes | None:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return self.value


async def test_hit_miss_and_delete(infra: Infra) -> None:
    redis = create_redis(infra.redis_url)
    cache = Cache(redis, "kit")
    key = cache.key("item", "hit-miss")
    await cache.delete(key)
    loader = CountingLoader(b'{"v":1}')
    assert await cache.get_or_load(key, loader) == b'{"v":1}'
    assert await cache.get_or_load(key, loader) == b'{"v":1}'
    assert loader.calls == 1
    await cache.delete(key)
    assert await cache.get_or_load(key, loader) == b'{"v":1}'
    assert loader.calls == 2
    assert 0 < await redis.ttl(key) <= 300
    await redis.aclose()


async def test_not_found_is_cached_too(infra: Infra) -> None:
    redis = create_redis(infra.redis_url)
    cache = Cache(redis, "kit")
    key = cache.key("missing", "x")
    await cache.delete(key)
    loader = CountingLoader(None)
    assert await cache.get_or_load(key, loader) is None
    assert await cache.get_or_load(key, loader) is None
    assert loader.calls == 1
    await redis.aclose()


async def test_version_bump_invalidates_a_namespace(infra: Infra) -> None:
    redis = create_redis(infra.redis_url)
    cache = Cache(redis, "kit")
    v1 = await cache.version("lists")
    key1 = cache.key("lists", v1, "page1")
    await cache.get_or_load(key1, CountingLoader(b"old"))
    await cache.bump("lists")
    v2 = await cache.version("lists")
    assert v2 == v1 + 1
    fresh = CountingLoader(b"new")
    assert await cache.get_or_load(cache.key("lists", v2, "page1"), fresh) == b"new"
    assert fresh.calls == 1
    await redis.aclose()


async def test_stampede_loads_once_across_caches(infra: Infra) -> None:
    # Two Cache objects = two worker processes sharing Redis.
    redis_a, redis_b = create_redis(infra.redis_url), create_redis(infra.redis_url)
    cache_a, cache_b = Cache(redis_a, "kit"), Cache(redis_b, "kit")
    key = cache_a.key("hot", "stampede")
    await cache_a.delete(key)
    loader = CountingLoader(b"hot", delay=0.2)
    results = await asyncio.gather(*(c.get_or_load(key, loader) for c in [cache_a, cache_b] * 50))
    assert results == [b"hot"] * 100
    assert loader.calls == 1
    await redis_a.aclose()
    await redis_b.aclose()


async def test_redis_outage_falls_through_to_the_loader() -> None:
    dead = aioredis.Redis.from_url(
        "redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2
    )
    guard = RedisGuard(cooldown=30)
    cache = Cache(dead, "kit", guard=guard)
    loader = CountingLoader(b"from-db")
    assert await cache.get_or_load(cache.key("x"), loader) == b"from-db"
    assert not guard.available
    # While the guard is open, Redis is not even tried: the call is immediate.
    start = asyncio.get_running_loop().time()
    for _ in range(20):
        assert await cache.get_or_load(cache.key("x"), loader) == b"from-db"
    assert asyncio.get_running_loop().time() - start < 0.5
    assert loader.calls == 21
    await cache.bump("anything")  # invalidation during an outage does not raise
    await dead.aclose()
