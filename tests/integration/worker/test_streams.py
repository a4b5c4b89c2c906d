"""Domain events survive a consumer killed mid-batch: reclaimed, handled once in effect,
acknowledged only after the handler's commit; streams are trimmed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid

import pytest
import redis.asyncio as aioredis
from sqlmodel import select

from services.common import events
from services.common.events import publish_event, stream_name
from services.common.streams import StreamConsumer, ensure_groups
from tests.integration.worker.models import Effect, MailOutbox
from tests.integration.worker.stream_handlers import effect_handler
from tests.support.infra import Infra


def event_row(topic: str, i: int) -> MailOutbox:
    return MailOutbox(id=uuid.uuid4(), kind="event", topic=topic, payload={"i": i})


async def effects(factory) -> list[str]:
    async with factory() as session:
        return list((await session.exec(select(Effect.event_id))).all())


async def test_a_consumer_killed_mid_batch_loses_no_event_and_doubles_none(
    factory, infra: Infra, redis: aioredis.Redis
) -> None:
    topic, group, n, hang_after = "test.crash", "crashers", 30, 10
    await ensure_groups(redis, [topic], group)
    rows = [event_row(topic, i) for i in range(n)]
    for row in rows:
        await publish_event(redis, row)
    env = {**os.environ, "DATABASE_URL": infra.database_url, "REDIS_URL": infra.redis_url}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.worker.stream_consumer_proc",
            topic,
            group,
            str(hang_after),
        ],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines: list[str] = []
        while "HANGING" not in lines:
            line = await asyncio.to_thread(proc.stdout.readline)  # type: ignore[union-attr]
            assert line, "the consumer exited early"
            lines.append(line.strip())
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    # The whole batch was delivered to the dead consumer; the 10th is committed, not acked.
    pending = await redis.xpending(stream_name(topic), group)
    assert pending["pending"] == n - (hang_after - 1)
    assert len(await effects(factory)) == hang_after

    survivor = StreamConsumer(
        redis,
        group=group,
        consumer="second",
        claim_idle_ms=100,
        handlers={topic: effect_handler(factory, "second")},
    )
    await asyncio.sleep(0.15)
    handled = await survivor.reclaim()
    assert handled == n - (hang_after - 1)  # every pending one, the committed one included
    assert (await redis.xpending(stream_name(topic), group))["pending"] == 0
    ids = await effects(factory)
    assert sorted(ids) == sorted(str(r.id) for r in rows)  # each event's effect exactly once


async def test_acknowledgement_comes_only_after_the_handlers_commit(
    factory, redis: aioredis.Redis
) -> None:
    topic, group = "test.ack", "ackers"
    await ensure_groups(redis, [topic], group)
    await publish_event(redis, event_row(topic, 1))
    seen_pending: list[int] = []
    calls = 0
    inner = effect_handler(factory, "c1")

    async def handler(event) -> None:
        nonlocal calls
        calls += 1
        # While the handler runs, its entry is still pending (not acknowledged).
        seen_pending.append((await redis.xpending(stream_name(topic), group))["pending"])
        if calls == 1:
            raise RuntimeError("the handler's transaction fails")
        await inner(event)

    consumer = StreamConsumer(
        redis, group=group, consumer="c1", claim_idle_ms=50, handlers={topic: handler}
    )
    assert await consumer.poll(block_ms=500) == 0  # failed: not acknowledged
    assert (await redis.xpending(stream_name(topic), group))["pending"] == 1
    assert await effects(factory) == []
    await asyncio.sleep(0.1)
    assert await consumer.reclaim() == 1  # redelivered, handled, then acknowledged
    assert seen_pending == [1, 1]
    assert (await redis.xpending(stream_name(topic), group))["pending"] == 0
    assert len(await effects(factory)) == 1


async def test_streams_are_trimmed(redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "STREAM_MAXLEN", 50)
    for i in range(1000):
        await publish_event(redis, event_row("test.trim", i))
    length = await redis.xlen(stream_name("test.trim"))
    assert length < 1000
    assert 50 <= length <= 50 + 100  # approximate trim: whole nodes of <= 100 entries


async def test_the_worker_samples_lag_for_every_group(redis: aioredis.Redis) -> None:
    from prometheus_client import REGISTRY

    from services.worker.sampler import sample_event_lag

    await ensure_groups(redis, ["test.lag"], "lagging")
    for i in range(7):
        await publish_event(redis, event_row("test.lag", i))
    assert await sample_event_lag(redis) >= 1
    value = REGISTRY.get_sample_value(
        "event_consumer_lag_messages", {"group": "lagging", "topic": "test.lag"}
    )
    assert value == 7
    count = await redis.xlen(stream_name("test.lag"))
    assert count == 7


async def test_lag_is_counted_where_redis_does_not_report_it(
    redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.worker import sampler

    key = stream_name("test.lag6")
    await ensure_groups(redis, ["test.lag6"], "old-redis")
    ids = [await redis.xadd(key, {"i": str(i)}) for i in range(5)]
    # What Redis 6.2 answers (no `lag` field), before and after two deliveries.
    assert await sampler.group_lag(redis, key, {"last-delivered-id": b"0-0"}) == 5
    assert await sampler.group_lag(redis, key, {"last-delivered-id": ids[1]}) == 3
    assert await sampler.group_lag(redis, key, {"last-delivered-id": ids[1], "lag": None}) == 3
    monkeypatch.setattr(sampler, "LAG_COUNT_CAP", 2)
    assert await sampler.group_lag(redis, key, {"last-delivered-id": b"0-0"}) == 2
    # Where Redis reports it, that figure is used as it is.
    assert await sampler.group_lag(redis, key, {"last-delivered-id": b"0-0", "lag": 4}) == 4
