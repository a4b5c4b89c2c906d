"""Periodic gauges: email queue depth and oldest waiting job, and the lag of every
consumer group of every event stream (so one scrape shows all consumers' backlog)."""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis

from services.common.cancel import pause
from services.common.events import STREAM_PREFIX
from services.common.redis import REDIS_ERRORS
from services.common.streams import EVENT_LAG, EVENT_PENDING
from services.worker.metrics import QUEUE_DEPTH, QUEUE_OLDEST_AGE
from services.worker.queue import EmailQueue

log = logging.getLogger("services.worker.sampler")
# Where Redis does not report a group's lag, at most this many entries are counted.
LAG_COUNT_CAP = 1000


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def sample_queue(queue: EmailQueue, now_ms: int) -> tuple[int, float]:
    """(jobs waiting: ready or scheduled for retry, age in s of the oldest ready job)."""
    waiting = await queue.count("incomplete") - await queue.count("active")
    oldest_age = 0.0
    head = await queue.redis.lindex(queue.namespace("queued"), 0)
    if head is not None:
        job = queue.deserialize(await queue.redis.get(head))
        if job is not None and job.queued:
            oldest_age = max(now_ms - job.queued, 0) / 1000
    return max(waiting, 0), oldest_age


async def group_lag(redis: aioredis.Redis, key: bytes | str, info: dict[str, object]) -> int:
    """Entries of the stream not yet delivered to the group. Redis 7 says it in XINFO
    GROUPS; Redis 6.2 and a stream whose count Redis lost
    (after XDEL) do not: then the entries past the group's last delivered id are
    counted, up to LAG_COUNT_CAP."""
    lag = info.get("lag")
    if isinstance(lag, int):
        return lag
    last = _text(info.get("last-delivered-id") or "0-0")
    entries = await redis.xrange(key, min=f"({last}", max="+", count=LAG_COUNT_CAP)
    return len(entries or ())


async def sample_event_lag(redis: aioredis.Redis) -> int:
    """Set lag and pending gauges for every group of every events:* stream; returns groups seen."""
    seen = 0
    async for key in redis.scan_iter(match=STREAM_PREFIX + "*", _type="stream", count=200):
        topic = _text(key)[len(STREAM_PREFIX) :]
        for info in await redis.xinfo_groups(key):
            group = _text(info.get("name"))
            EVENT_LAG.labels(group, topic).set(await group_lag(redis, key, info))
            EVENT_PENDING.labels(group, topic).set(info.get("pending") or 0)
            seen += 1
    return seen


async def run_sampler(queue: EmailQueue, redis: aioredis.Redis, interval: float) -> None:
    from saq.utils import now

    while True:
        try:
            depth, age = await sample_queue(queue, now())
            QUEUE_DEPTH.set(depth)
            QUEUE_OLDEST_AGE.set(age)
            await sample_event_lag(redis)
        except asyncio.CancelledError:
            raise
        except REDIS_ERRORS as exc:
            log.warning("metrics sampling failed: %s", type(exc).__name__)
        await pause(interval)
