"""The rate limiter's count in real Redis, over both clients behind REDIS_LEAN: the lean
connection (services/common/leanredis.py) and plain redis-py give the same counts, TTLs
and decisions; the lean one selects the client's database, pipelines on one connection,
survives a killed connection; a silent server fails the limiter open."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.ratelimit import CLIENT_NAME, Limit, RateLimiter
from services.common import leanredis


def _limiter(redis: aioredis.Redis, amount: int = 5) -> RateLimiter:
    return RateLimiter(
        redis,
        anonymous=Limit("t_anon", amount, 60),
        user=Limit("t_user", amount, 60),
        auth=Limit("t_auth", amount, 60),
        prefix=f"rl:test:{uuid.uuid4().hex}",
    )


@pytest.fixture
def lean_switch(request: pytest.FixtureRequest) -> Iterator[bool]:
    before = leanredis.ENABLED
    leanredis.ENABLED = request.param
    yield request.param
    leanredis.ENABLED = before


@pytest.fixture
async def limiter(redis: aioredis.Redis, lean_switch: bool) -> AsyncIterator[RateLimiter]:
    made = _limiter(redis)
    assert (made._lean is not None) is lean_switch  # the switch picks the client
    yield made
    await made.close()


@pytest.mark.parametrize("lean_switch", [True, False], indirect=True, ids=["lean", "redis-py"])
async def test_both_clients_count_and_decide_alike(
    redis: aioredis.Redis, limiter: RateLimiter
) -> None:
    decisions = await asyncio.gather(
        *(limiter.hit(limiter.anonymous, "198.51.100.7") for _ in range(8))
    )
    assert all(d is not None for d in decisions)
    assert sorted(d.remaining for d in decisions if d) == [0, 0, 0, 0, 1, 2, 3, 4]
    assert [d.allowed for d in decisions if d].count(True) == 5
    assert all(d is not None and 1 <= d.reset_seconds <= 60 for d in decisions)
    key = limiter.anonymous.key(limiter._prefix, "198.51.100.7")
    # In the database of the redis-py client it was made from, with the window's TTL.
    assert int(await redis.get(key)) == 8
    assert 0 < await redis.pttl(key) <= 60_000
    # Over the limit: refused locally until the window resets, Redis not asked again.
    refused = await limiter.hit(limiter.anonymous, "198.51.100.7")
    assert refused is not None and not refused.allowed
    assert int(await redis.get(key)) == 8


@pytest.mark.parametrize("lean_switch", [True, False], indirect=True, ids=["lean", "redis-py"])
async def test_both_clients_raise_the_same_error_on_a_wrong_type(
    redis: aioredis.Redis, limiter: RateLimiter
) -> None:
    key = limiter.user.key(limiter._prefix, "u1")
    await redis.rpush(key, "not a counter")
    with pytest.raises(RedisError, match="WRONGTYPE"):
        await limiter._count(key, 60_000)


@pytest.mark.parametrize("lean_switch", [True], indirect=True)
async def test_one_lean_connection_that_reconnects_after_a_kill(
    redis: aioredis.Redis, limiter: RateLimiter
) -> None:
    key = limiter.anonymous.key(limiter._prefix, "203.0.113.9")
    await asyncio.gather(*(limiter._count(key, 60_000) for _ in range(30)))
    db = redis.connection_pool.connection_kwargs.get("db", 0)
    ours = [c for c in await redis.client_list() if c["name"] == CLIENT_NAME and int(c["db"]) == db]
    assert len(ours) >= 1
    # This limiter's own connection: the newest of that name (other tests' may linger).
    newest = max(ours, key=lambda c: int(c["id"]))
    assert await redis.client_kill_filter(_id=newest["id"]) == 1
    outcomes: list[object] = []
    for _ in range(3):
        try:
            outcomes.append((await limiter._count(key, 60_000))[0])
        except RedisError as exc:  # the one call that met the dead socket
            outcomes.append(type(exc).__name__)
    counts = [o for o in outcomes if isinstance(o, int)]
    assert counts and counts[-1] == int(await redis.get(key))
    assert isinstance(outcomes[-1], int)


@pytest.mark.parametrize("lean_switch", [True, False], indirect=True, ids=["lean", "redis-py"])
async def test_a_silent_server_fails_the_limiter_open(lean_switch: bool) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts, never answers

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = aioredis.Redis.from_url(
        f"redis://127.0.0.1:{port}/0", socket_timeout=0.2, socket_connect_timeout=0.2
    )
    try:
        limiter = _limiter(client)
        started = time.monotonic()
        assert await limiter.hit(limiter.anonymous, "198.51.100.7") is None  # fail open
        assert time.monotonic() - started < 5.0
        await limiter.close()
    finally:
        await client.aclose()
        server.close()


def test_tls_and_unix_socket_urls_keep_redis_py() -> None:
    for url in ("rediss://127.0.0.1:6379/0", "unix:///tmp/redis.sock"):
        assert _limiter(aioredis.Redis.from_url(url))._lean is None
