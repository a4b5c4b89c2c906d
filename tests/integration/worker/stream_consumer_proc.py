"""A consumer process for the crash test: handles events (inbox + effect, committed), and
hangs right after committing the N-th one, before its acknowledgement, to be SIGKILLed.

    python -m tests.integration.worker.stream_consumer_proc <topic> <group> <hang_after>
"""

from __future__ import annotations

import asyncio
import os
import sys

from services.common.db import create_engine, session_factory
from services.common.redis import create_redis
from services.common.settings import CommonSettings
from services.common.streams import StreamConsumer, ensure_groups
from tests.integration.worker.stream_handlers import effect_handler


async def main(topic: str, group: str, hang_after: int) -> None:
    settings = CommonSettings()
    engine = create_engine(settings, pool_size=2)
    redis = create_redis(os.environ["REDIS_URL"], timeout=5)
    handled = 0

    async def after_commit(event_id: str) -> None:
        nonlocal handled
        handled += 1
        print(f"HANDLED {event_id}", flush=True)
        if handled == hang_after:
            print("HANGING", flush=True)
            await asyncio.sleep(3600)  # committed, not acknowledged: SIGKILL comes now

    handler = effect_handler(session_factory(engine), "first", after_commit)
    await ensure_groups(redis, [topic], group)
    consumer = StreamConsumer(redis, group=group, consumer="first", handlers={topic: handler})
    await consumer.poll(block_ms=2000)  # one batch: all the events


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
