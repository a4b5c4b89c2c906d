"""The gateway's lean Redis client for rate-limit hits (gateway/counter.py), against the
real Redis: database selection, pipelining, a killed connection, a silent server."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.counter import CLIENT_NAME, RedisCounter
from gateway.ratelimit import Limit, RateLimiter
from services.common.ratelimit import FIXED_WINDOW_HIT


@pytest.fixture
async def counter(redis: aioredis.Redis) -> AsyncIterator[RedisCounter]:
    made = RedisCounter.for_script(redis, FIXED_WINDOW_HIT)
    assert made is not None  # plain TCP: the lean client is used
    yield made
    await made.close()


async def test_counts_in_the_clients_database_pipelined(
    redis: aioredis.Redis, counter: RedisCounter
) -> None:
    key = f"rl:test:{uuid.uuid4().hex}"
    results = await asyncio.gather(*(counter.hit(key, 60_000) for _ in range(30)))
    assert sorted(count for count, _ in results) == list(range(1, 31))
    assert all(0 < ttl <= 60_000 for _, ttl in results)
    # The key is in the database of the redis-py client it was made from (SELECT sent).
    assert int(await redis.get(key)) == 30
    assert 0 < await redis.pttl(key) <= 60_000


async def test_reconnects_after_redis_drops_the_connection(
    redis: aioredis.Redis, counter: RedisCounter
) -> None:
    key = f"rl:test:{uuid.uuid4().hex}"
    assert (await counter.hit(key, 60_000))[0] == 1
    db = redis.connection_pool.connection_kwargs.get("db", 0)
    ours = [c for c in await redis.client_list() if c["name"] == CLIENT_NAME and int(c["db"]) == db]
    assert len(ours) == 1  # one connection, whatever the concurrency
    assert await redis.client_kill_filter(_id=ours[0]["id"]) == 1
    outcomes: list[object] = []
    for _ in range(3):
        try:
            outcomes.append((await counter.hit(key, 60_000))[0])
        except RedisError as exc:  # the one call that met the dead socket
            outcomes.append(type(exc).__name__)
    counts = [o for o in outcomes if isinstance(o, int)]
    assert counts and counts[-1] == int(await redis.get(key))
    assert isinstance(outcomes[-1], int)


async def test_a_silent_server_times_out_and_the_limiter_fails_open() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts, never answers

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        counter = RedisCounter("127.0.0.1", port, script=FIXED_WINDOW_HIT, timeout=0.2)
        started = time.monotonic()
        with pytest.raises(RedisTimeoutError):
            await counter.hit("rl:test:silent", 60_000)
        assert time.monotonic() - started < 2.0
        await counter.close()

        limiter = RateLimiter(
            aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=0.2),
            anonymous=Limit("t_anon", 1, 60),
            user=Limit("t_user", 1, 60),
            auth=Limit("t_auth", 1, 60),
        )
        assert await limiter.hit(limiter.anonymous, "198.51.100.7") is None  # fail open
        await limiter.close()
    finally:
        server.close()


def test_tls_and_unix_socket_urls_keep_redis_py() -> None:
    for url in ("rediss://127.0.0.1:6379/0", "unix:///tmp/redis.sock"):
        assert RedisCounter.for_client(aioredis.Redis.from_url(url), FIXED_WINDOW_HIT) is None
