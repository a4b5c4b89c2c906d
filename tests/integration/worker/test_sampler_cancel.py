"""The metrics sampler, cancelled at random moments against real Redis, always stops.

redis-py writes through `asyncio.wait_for`, which on Python 3.11 drops a cancellation that
lands as the write completes; the sampler then ran on and the worker's shutdown hung."""

from __future__ import annotations

import asyncio
import random

import redis.asyncio as aioredis

from services.common.redis import create_redis
from services.worker.queue import EmailQueue
from services.worker.sampler import run_sampler
from tests.support.infra import Infra

ROUNDS = 40


async def test_the_sampler_stops_on_every_cancellation(infra: Infra) -> None:
    redis = create_redis(infra.redis_url, 0.5)
    queue = EmailQueue(aioredis.Redis.from_url(infra.redis_url, socket_timeout=5))
    rng = random.Random(7)
    still_running = 0
    try:
        for _ in range(ROUNDS):
            task = asyncio.create_task(run_sampler(queue, redis, 0.001))
            await asyncio.sleep(rng.random() * 0.01)
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=1)
            if not done:
                still_running += 1
                while not task.done():  # clean up: keep asking until one lands
                    task.cancel()
                    await asyncio.sleep(0.01)
    finally:
        await queue.disconnect()
        await redis.aclose()
    assert still_running == 0
