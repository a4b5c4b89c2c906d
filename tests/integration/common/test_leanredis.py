"""The lean Redis client of the cache reads (services/common/leanredis.py) against real
Redis: bulk strings of any content and size, nil, MGET arrays, error replies, and a cache
that reads through it keeping its guard semantics when Redis is not there."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.common.cache import Cache
from services.common.leanredis import LeanRedis, _parse
from services.common.redis import create_redis
from tests.integration.worker.smtp import free_port
from tests.support.infra import Infra


@pytest.fixture
async def redis(infra: Infra) -> AsyncIterator[aioredis.Redis]:
    client = create_redis(infra.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def lean(redis: aioredis.Redis) -> AsyncIterator[LeanRedis]:
    made = LeanRedis.for_client(redis, client_name="test-lean")
    assert made is not None
    yield made
    await made.close()


def key() -> str:
    return f"lean:test:{uuid.uuid4().hex}"


async def test_get_returns_exact_bytes_of_any_content_and_size(
    redis: aioredis.Redis, lean: LeanRedis
) -> None:
    small, big, empty = key(), key(), key()
    tricky = b'{"a": "line\r\nbreak"}\r\n$5\r\n*2\r\n' + bytes(range(256))
    huge = bytes(range(256)) * 2048  # 512 KiB: arrives in many reads
    await redis.set(small, tricky)
    await redis.set(big, huge)
    await redis.set(empty, b"")
    got = await asyncio.gather(lean.get(small), lean.get(big), lean.get(empty), lean.get(key()))
    assert got == [tricky, huge, b"", None]


async def test_mget_returns_values_and_nils_in_order(
    redis: aioredis.Redis, lean: LeanRedis
) -> None:
    a, b = key(), key()
    await redis.set(a, b"1")
    await redis.set(b, b"two\r\n")
    assert await lean.call(b"MGET", a, key(), b) == [b"1", None, b"two\r\n"]


async def test_an_error_reply_raises_and_the_connection_stays_usable(
    redis: aioredis.Redis, lean: LeanRedis
) -> None:
    listed, plain = key(), key()
    await redis.rpush(listed, b"x")
    await redis.set(plain, b"ok")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await lean.get(listed)
    assert await lean.get(plain) == b"ok"


async def test_a_cache_reading_through_it_falls_back_like_redis_py(infra: Infra) -> None:
    down = create_redis(f"redis://127.0.0.1:{free_port()}/0", 0.2)
    fast = LeanRedis.for_client(down, client_name="test-lean")
    cache = Cache(down, "lean_test", fast=fast)
    loads = 0

    async def load() -> bytes:
        nonlocal loads
        loads += 1
        return b"from the database"

    try:
        with pytest.raises(RedisError):
            assert fast is not None
            await fast.get("anything")
        assert await cache.get_or_load("k", load) == b"from the database"
        assert loads == 1 and not cache.guard.available  # tripped: Redis is skipped now
    finally:
        await down.aclose()


async def _slow_redis(delay: float, connections: list[int]) -> tuple[asyncio.AbstractServer, int]:
    """A RESP server that answers `GET slow` only after `delay` (everything else at once)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        buf = b""
        while data := await reader.read(65536):
            buf += data
            while (parsed := _parse(buf, 0)) is not None:
                command, end = parsed
                buf = buf[end:]
                assert isinstance(command, list)
                if command[:2] == [b"GET", b"slow"]:
                    await asyncio.sleep(delay)
                    writer.write(b"$4\r\nlate\r\n")
                elif command[0] == b"GET":
                    writer.write(b"$%d\r\n%s\r\n" % (len(command[1]), command[1]))
                else:
                    writer.write(b"+OK\r\n")
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_a_reply_too_late_times_out_and_never_answers_a_later_call() -> None:
    connections: list[int] = []
    server, port = await _slow_redis(0.6, connections)
    client = LeanRedis("127.0.0.1", port, client_name="test-slow", timeout=0.2)
    try:
        assert await client.get("first") == b"first"
        started = asyncio.get_running_loop().time()
        with pytest.raises(RedisTimeoutError):
            await client.get("slow")
        assert 0.15 < asyncio.get_running_loop().time() - started < 0.5
        # The late "late" must not become this call's reply: a new connection answers it.
        assert await client.get("after") == b"after"
        await asyncio.sleep(0.6)
        assert await client.get("again") == b"again"
        assert len(connections) == 2
    finally:
        await client.close()
        server.close()


async def test_a_cancelled_call_leaves_the_connection_usable() -> None:
    server, port = await _slow_redis(0.3, [])
    client = LeanRedis("127.0.0.1", port, client_name="test-cancel", timeout=2.0)
    try:
        call = asyncio.ensure_future(client.get("slow"))
        await asyncio.sleep(0.05)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        # The slow reply still arrives first and is matched to the cancelled call.
        assert await client.get("next") == b"next"
    finally:
        await client.close()
        server.close()


async def test_the_fast_path_answers_as_redis_py_does(
    redis: aioredis.Redis, lean: LeanRedis
) -> None:
    """REDIS_LEAN's equivalence: the same commands, the same replies and errors."""
    text, nothing, listed = key(), key(), key()
    await redis.set(text, b"v\r\n\x00")
    await redis.rpush(listed, "x")
    script = "return {redis.call('INCR', KEYS[1]), tonumber(ARGV[1]), ARGV[1]}"
    counter = key()
    for command, args in (
        ("GET", (text,)),
        ("GET", (nothing,)),
        ("MGET", (text, nothing, text)),
        ("EVAL", (script, 1, counter, 7)),
        ("EVAL", (script, 1, counter, 7)),
    ):
        plain = await redis.execute_command(command, *args)
        fast = await lean.call(command, *args)
        if command == "EVAL":  # both incremented: the fast one saw one more
            assert fast == [plain[0] + 1, *plain[1:]], (command, args)
        else:
            assert fast == plain, (command, args)
    for command, args in (
        ("GET", (listed,)),
        ("EVAL", ("return redis.call('GET', KEYS[1])", 1, listed)),
    ):
        with pytest.raises(ResponseError) as plain_error:
            await redis.execute_command(command, *args)
        with pytest.raises(ResponseError) as fast_error:
            await lean.call(command, *args)
        assert str(fast_error.value).split()[0] == str(plain_error.value).split()[0] == "WRONGTYPE"


def test_the_switch_off_keeps_redis_py(redis: aioredis.Redis) -> None:
    from services.common import leanredis

    before = leanredis.ENABLED
    leanredis.ENABLED = False
    try:
        assert LeanRedis.for_client(redis, client_name="test-off") is None
    finally:
        leanredis.ENABLED = before
