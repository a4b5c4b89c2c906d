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


class CountingRedis:
    """The real client, counting the commands (a pipeline counts once: one round trip)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> object:
        self.calls.append(name)
        return getattr(self.redis, name)


async def test_versioned_entries_read_in_one_round_trip_and_go_stale_on_bump(
    infra: Infra,
) -> None:
    redis = create_redis(infra.redis_url)
    counting = CountingRedis(redis)
    cache = Cache(counting, "kit")  # type: ignore[arg-type]
    key = cache.key("versioned", "page1")
    await cache.delete(key)
    old = CountingLoader(b"old")
    assert await cache.get_or_load_versioned("vlists", key, old) == b"old"
    counting.calls.clear()
    assert await cache.get_or_load_versioned("vlists", key, old) == b"old"
    assert old.calls == 1 and counting.calls == ["mget"]  # a hit: one command
    version = await cache.version("vlists")
    assert await cache.get_versioned("vlists", key) == (version, b"old")
    await cache.bump("vlists")
    assert await cache.get_versioned("vlists", key) == (version + 1, None)
    new = CountingLoader(b"new")
    assert await cache.get_or_load_versioned("vlists", key, new) == b"new"
    assert await cache.get_or_load_versioned("vlists", key, new) == b"new"
    assert new.calls == 1
    # A cached "not found" is versioned too.
    gone = cache.key("versioned", "gone")
    await cache.delete(gone)
    missing = CountingLoader(None)
    assert await cache.get_or_load_versioned("vlists", gone, missing) is None
    assert await cache.get_or_load_versioned("vlists", gone, missing) is None
    assert missing.calls == 1
    await redis.aclose()


async def test_known_miss_skips_the_lookup_and_stores_in_one_round_trip(infra: Infra) -> None:
    redis = create_redis(infra.redis_url)
    counting = CountingRedis(redis)
    cache = Cache(counting, "kit")  # type: ignore[arg-type]
    key = cache.key("item", "known-miss")
    await cache.delete(key)
    counting.calls.clear()
    loader = CountingLoader(b"v")
    assert await cache.get_or_load(key, loader, known_miss=True) == b"v"
    # lock, then value + unlock in one pipeline; no GET first
    assert counting.calls == ["set", "pipeline"]
    assert await redis.get(key) == b"v"
    assert await redis.exists(f"lock:{key}") == 0
    await redis.aclose()


async def test_versioned_stampede_loads_once_across_caches(infra: Infra) -> None:
    redis_a, redis_b = create_redis(infra.redis_url), create_redis(infra.redis_url)
    cache_a, cache_b = Cache(redis_a, "kit"), Cache(redis_b, "kit")
    key = cache_a.key("hot", "versioned-stampede")
    await cache_a.delete(key)
    loader = CountingLoader(b"hot", delay=0.2)
    results = await asyncio.gather(
        *(c.get_or_load_versioned("vhot", key, loader) for c in [cache_a, cache_b] * 20)
    )
    assert results == [b"hot"] * 40
    assert loader.calls == 1
    await redis_a.aclose()
    await redis_b.aclose()
