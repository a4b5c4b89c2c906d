"""The worker's side of the saq `emails` queue: a Redis queue that backs off while Redis
is down, sweeps stuck jobs with a configurable abort wait, and logs no message bodies."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from saq import Job
from saq.queue.redis import RedisQueue

from services.common.jobs import EMAIL_QUEUE_NAME
from services.common.redis import REDIS_ERRORS
from services.worker.settings import WorkerSettings

log = logging.getLogger("services.worker.queue")

# How long a dequeue blocks on Redis; the socket timeout must be longer.
DEQUEUE_TIMEOUT_SECONDS = 2.0
REDIS_DOWN_BACKOFF_SECONDS = 1.0


class EmailQueue(RedisQueue):
    def __init__(self, redis: aioredis.Redis, *, sweep_abort: float = 5.0) -> None:
        super().__init__(redis, name=EMAIL_QUEUE_NAME)
        self.sweep_abort = sweep_abort
        self._redis_down_logged = 0.0

    async def sweep(self, lock: int = 60, abort: float = 5.0) -> list[str]:
        return await super().sweep(lock, abort=self.sweep_abort)

    async def dequeue(
        self,
        timeout: float = 0.0,  # noqa: ASYNC109 - saq's signature
        poll_interval: float = 0.0,
    ) -> Job | None:
        # saq loops on dequeue with no pause: without this, a Redis outage spins a core.
        try:
            return await super().dequeue(timeout, poll_interval)
        except REDIS_ERRORS as exc:
            if time.monotonic() - self._redis_down_logged > 30:
                self._redis_down_logged = time.monotonic()
                log.warning("email queue cannot reach redis, retrying: %s", type(exc).__name__)
            await asyncio.sleep(REDIS_DOWN_BACKOFF_SECONDS)
            return None


def create_queue(settings: WorkerSettings) -> EmailQueue:
    redis = aioredis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=max(settings.redis_timeout, 1.0),
        socket_timeout=DEQUEUE_TIMEOUT_SECONDS + 10,
        health_check_interval=30,
    )
    return EmailQueue(redis, sweep_abort=settings.worker_sweep_abort_seconds)


class JobLogFilter(logging.Filter):
    """saq logs whole jobs (kwargs included: recipients, links with tokens) when a job
    fails; keep only the job's identity, and no traceback for an expected retry."""

    def filter(self, record: logging.LogRecord) -> bool:
        args: Any = record.args
        if isinstance(args, tuple) and any(isinstance(a, Job) for a in args):
            record.args = tuple(a.info(False) if isinstance(a, Job) else a for a in args)
        if record.exc_info and isinstance(record.exc_info[1], ExpectedRetry):
            record.exc_info = None
            record.exc_text = None
        return True


class ExpectedRetry(Exception):
    """A transient failure: saq retries the job after the backoff."""


def install_log_filter() -> None:
    logger = logging.getLogger("saq")
    if not any(isinstance(f, JobLogFilter) for f in logger.filters):
        logger.addFilter(JobLogFilter())
