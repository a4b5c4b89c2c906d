"""StreamConsumer given the services' shared Redis client (0.5 s socket timeout): idle polls
must not time out (the retry backoff would then grow to 10 s and delay every event), and
an entry whose XREADGROUP reply was lost is handled at once, not after `claim_idle_ms`."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from services.common.events import stream_name
from services.common.redis import create_redis
from services.common.streams import Event, StreamConsumer, ensure_groups
from tests.support.infra import Infra

GROUP = "kit-idle"


@pytest.fixture
async def shared_client(infra: Infra) -> AsyncIterator[aioredis.Redis]:
    client = create_redis(infra.redis_url)  # the same client and timeout the services use
    yield client
    await client.aclose()


def entry(topic: str) -> dict[str, str]:
    return {"id": str(uuid.uuid4()), "topic": topic, "data": json.dumps({}), "request_id": ""}


async def run_until(consumer: StreamConsumer, arrived: asyncio.Event, within: float) -> bool:
    task = asyncio.create_task(consumer.run())
    try:
        await asyncio.wait_for(arrived.wait(), within)
        return True
    except TimeoutError:
        return False
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_idle_consumer_does_not_time_out_and_picks_up_a_new_event(
    shared_client: aioredis.Redis,
) -> None:
    topic = f"kit.idle.{uuid.uuid4().hex[:8]}"
    arrived = asyncio.Event()

    async def handler(event: Event) -> None:
        arrived.set()

    consumer = StreamConsumer(
        shared_client, group=GROUP, consumer="c1", handlers={topic: handler}, block_ms=1000
    )
    # It blocks for the full second on a reader whose socket timeout covers the block.
    reader_timeout = consumer.redis.connection_pool.connection_kwargs["socket_timeout"]
    assert consumer.block_ms == 1000 and reader_timeout > 1.0
    task = asyncio.create_task(consumer.run())
    try:
        await asyncio.sleep(3)  # several idle polls (the bug's backoff would reach 4 s)
        # Only timeouts count (another suite flushing the shared Redis may cause a NOGROUP).
        assert consumer.failures["TimeoutError"] == 0, "idle polls time out"
        await shared_client.xadd(stream_name(topic), entry(topic))  # type: ignore[arg-type]
        # A correctness bound, not a timing claim: with the backoff bug this was ~10 s.
        await asyncio.wait_for(arrived.wait(), 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_entry_delivered_but_never_read_is_handled_on_restart(
    shared_client: aioredis.Redis,
) -> None:
    topic = f"kit.lost.{uuid.uuid4().hex[:8]}"
    await ensure_groups(shared_client, [topic], GROUP)
    await shared_client.xadd(stream_name(topic), entry(topic))  # type: ignore[arg-type]
    # Redis delivers the entry to "c1" but the reply never reaches c1's handler: the same
    # state as a read that timed out on the client side.
    delivered = await shared_client.xreadgroup(GROUP, "c1", {stream_name(topic): ">"}, count=10)
    assert len(delivered[0][1]) == 1
    arrived = asyncio.Event()

    async def handler(event: Event) -> None:
        arrived.set()

    # XAUTOCLAIM would hand it back only after a minute: the own-pending replay must not.
    consumer = StreamConsumer(
        shared_client,
        group=GROUP,
        consumer="c1",
        handlers={topic: handler},
        claim_idle_ms=60_000,
    )
    assert await run_until(consumer, arrived, within=5)
    pending = await shared_client.xpending(stream_name(topic), GROUP)
    assert pending["pending"] == 0  # handled and acknowledged
