"""The rate limiter's count in real Redis, over both clients behind REDIS_LEAN: the lean
connection (services/common/leanredis.py) and plain redis-py give the same counts, TTLs
and decisions; the lean one selects the client's database, pipelines on one connection,
survives a killed connection; a silent server fails the limiter open."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway import ratelimit
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
    # One block in flight per subject: once the limit was reached, the requests waiting
    # for it were refused without asking Redis.
    assert int(await redis.get(key)) == 5
    assert 0 < await redis.pttl(key) <= 60_000
    # Over the limit: refused locally until the window resets, Redis not asked again.
    refused = await limiter.hit(limiter.anonymous, "198.51.100.7")
    assert refused is not None and not refused.allowed
    assert int(await redis.get(key)) == 5


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


# --- leased counts: a busy subject takes blocks of hits, a window never over-admits ---


class _Counted(RateLimiter):
    """The real limiter, with its round trips to Redis counted."""

    round_trips = 0

    async def _count(self, key: str, window_ms: int, hits: int = 1) -> tuple[int, int]:
        self.round_trips += 1
        return await super()._count(key, window_ms, hits)


@contextlib.asynccontextmanager
async def _counted(
    redis: aioredis.Redis, limit: Limit, prefix: str | None = None
) -> AsyncIterator[_Counted]:
    prefix = prefix or f"rl:test:{uuid.uuid4().hex}"
    limiter = _Counted(redis, anonymous=limit, user=limit, auth=limit, prefix=prefix)
    try:
        yield limiter
    finally:
        await limiter.close()


@pytest.mark.parametrize("lean_switch", [True, False], indirect=True, ids=["lean", "redis-py"])
async def test_a_busy_subject_costs_a_round_trip_per_block(
    redis: aioredis.Redis, lean_switch: bool
) -> None:
    limit = Limit("t_busy", 100_000, 60)
    async with _counted(redis, limit) as limiter:
        first = await limiter.hit(limit, "198.51.100.20")
        key = limit.key(limiter._prefix, "198.51.100.20")
        # A subject's first request is counted alone: a light client costs exactly one.
        assert int(await redis.get(key)) == 1 and limiter.round_trips == 1
        assert first is not None and first.allowed and first.remaining == limit.amount - 1
        decisions = [await limiter.hit(limit, "198.51.100.20") for _ in range(999)]
        assert all(d is not None and d.allowed for d in decisions)
        # Blocks 2, 4, ... 32, then 32 at a time: 1,000 requests, ~36 round trips.
        assert limiter.round_trips < 50
        counted = int(await redis.get(key))
        assert 1_000 <= counted < 1_000 + ratelimit.LEASE_MAX  # leased, not all spent
        last = decisions[-1]
        assert last is not None and last.remaining == limit.amount - 1_000


@pytest.mark.parametrize("lean_switch", [True, False], indirect=True, ids=["lean", "redis-py"])
async def test_workers_leasing_together_never_admit_more_than_the_limit(
    redis: aioredis.Redis, lean_switch: bool
) -> None:
    limit = Limit("t_shared", 400, 60)
    prefix = f"rl:test:{uuid.uuid4().hex}"
    async with contextlib.AsyncExitStack() as stack:
        three = [_counted(redis, limit, prefix) for _ in range(3)]  # three gateway workers
        workers = [await stack.enter_async_context(worker) for worker in three]
        allowed = 0
        for _ in range(60):  # 60 rounds of 20 concurrent requests over the three: 1,200
            decisions = await asyncio.gather(
                *(workers[i % 3].hit(limit, "203.0.113.50") for i in range(20))
            )
            assert all(d is not None for d in decisions)
            allowed += sum(1 for d in decisions if d is not None and d.allowed)
        assert allowed <= limit.amount
        # Unspent leases are lost to the subject: at most each worker's last block, and
        # a block is at most 1/LEASE_SHARE of what was left when it was taken.
        assert allowed >= limit.amount - 3 * (limit.amount // ratelimit.LEASE_SHARE)
        trips = sum(w.round_trips for w in workers)
        assert trips < 400  # blocks, not a round trip per admitted request
        # Refused workers stop asking: the last rounds cost no round trips.
        refused = await asyncio.gather(*(w.hit(limit, "203.0.113.50") for w in workers))
        assert all(d is not None and not d.allowed for d in refused)
        assert sum(w.round_trips for w in workers) == trips


@pytest.mark.parametrize("lean_switch", [True], indirect=True)
async def test_a_new_window_drops_what_the_old_one_leased(
    redis: aioredis.Redis, lean_switch: bool
) -> None:
    limit = Limit("t_window", 10_000, 1)  # one-second windows
    async with _counted(redis, limit) as limiter:
        for _ in range(40):
            await limiter.hit(limit, "198.51.100.30")
        lease = limiter._leases[(limit, "198.51.100.30")]
        assert lease.tokens > 0  # leased and unspent when the window ends
        await asyncio.sleep(1.05)
        decision = await limiter.hit(limit, "198.51.100.30")
        assert decision is not None and decision.allowed
        # A new window in Redis, counted from one; the old block was not carried over.
        assert int(await redis.get(lease.key)) == 1
        assert lease.tokens == 0


@pytest.mark.parametrize("lean_switch", [True], indirect=True)
async def test_concurrent_requests_of_a_subject_share_one_block_in_flight(
    redis: aioredis.Redis, lean_switch: bool
) -> None:
    limit = Limit("t_flight", 100_000, 60)
    async with _counted(redis, limit) as limiter:
        tasks = [asyncio.create_task(limiter.hit(limit, "198.51.100.40")) for _ in range(64)]
        await asyncio.sleep(0)
        for task in tasks[1:6]:  # clients that went away while waiting for the block
            task.cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        decisions = [d for d in done if not isinstance(d, BaseException)]
        assert len(decisions) == 59
        assert all(d is not None and d.allowed for d in decisions)
        # Blocks of 1, 2, 4, ... taken one at a time, not 64 blocks at once.
        assert limiter.round_trips <= 8
        counted = int(await redis.get(limit.key(limiter._prefix, "198.51.100.40")))
        assert 59 <= counted < 59 + ratelimit.LEASE_MAX
