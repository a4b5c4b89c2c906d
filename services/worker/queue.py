"""The worker's side of the saq `emails` queue: a Redis queue that backs off while Redis
is down, sweeps stuck jobs with a configurable abort wait, and logs no message bodies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from saq import Job
from saq.job import Status
from saq.queue.redis import RedisQueue

from services.common.jobs import EMAIL_QUEUE_NAME
from services.common.redis import REDIS_ERRORS
from services.worker.settings import WorkerSettings

log = logging.getLogger("services.worker.queue")

# How long a dequeue blocks on Redis; the socket timeout must be longer.
DEQUEUE_TIMEOUT_SECONDS = 2.0
REDIS_DOWN_BACKOFF_SECONDS = 1.0
# A dequeued job is marked ACTIVE one round trip after it enters the active list.
SWEEP_SECOND_LOOK_SECONDS = 1.0

# saq's own sweep script: the active list with each job, taken under a lock key.
ACTIVE_JOBS_SCRIPT = """
local id_jobs = {}
if redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('SETEX', KEYS[1], ARGV[1], 1)
    for i, v in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
        id_jobs[i] = {v, redis.call('GET', v)}
    end
end
return id_jobs
"""


class EmailQueue(RedisQueue):
    def __init__(self, redis: aioredis.Redis, *, sweep_abort: float = 5.0) -> None:
        super().__init__(redis, name=EMAIL_QUEUE_NAME)
        self.sweep_abort = sweep_abort
        self._redis_down_logged = 0.0
        self._active_jobs_script: AsyncScript | None = None

    async def sweep(self, lock: int = 60, abort: float = 5.0) -> list[str]:
        """saq's sweep, but a job found QUEUED in the active list gets a second look.

        A worker moves a job to the active list first and marks it ACTIVE a round trip
        later; saq's sweep can land in between (tobymao/saq#124, #277), abort a healthy
        run and re-queue its stale copy, which rolls back the attempt count. Only a job
        still not ACTIVE after SWEEP_SECOND_LOOK_SECONDS, or stuck, is swept, and the copy
        swept is the fresh one."""
        swept: list[str] = []
        suspects: list[Job] = []
        for job_id, job_bytes in await self._active_jobs(lock):
            job = self.deserialize(job_bytes)
            if job is None:
                swept.append(job_id)
                await self._drop_missing(job_id)
            elif job.stuck:
                swept.append(job_id)
                await self._sweep_one(job)
            elif job.status != Status.ACTIVE:
                suspects.append(job)
        if suspects:
            await asyncio.sleep(SWEEP_SECOND_LOOK_SECONDS)
        for first in suspects:
            job = await self.job(first.key)
            if job is None or (job.status, job.touched) != (first.status, first.touched):
                continue  # it moved on: a live worker has it
            swept.append(job.id)
            await self._sweep_one(job)
        return swept

    async def _sweep_one(self, job: Job) -> None:
        log.info("sweeping job %s", job.info(False))
        await self.abort(job, error=self.swept_error_message)
        with contextlib.suppress(asyncio.TimeoutError):
            await job.refresh(self.sweep_abort)
        if job.retryable:
            await self.retry(job, error=self.swept_error_message)
        else:
            await self.finish(job, Status.ABORTED, error=self.swept_error_message)

    async def _active_jobs(self, lock: int) -> list[tuple[str, bytes | None]]:
        """The active list and each job, once per `lock` seconds across workers."""
        if self._active_jobs_script is None:
            self._active_jobs_script = self.redis.register_script(ACTIVE_JOBS_SCRIPT)
        result = await self._active_jobs_script(
            keys=[self._sweep, self._active], args=[lock], client=self.redis
        )
        return [(job_id.decode(), job_bytes) for job_id, job_bytes in result]

    async def _drop_missing(self, job_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lrem(self._active, 0, job_id)
            pipe.zrem(self._incomplete, job_id)
            await pipe.execute()

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
