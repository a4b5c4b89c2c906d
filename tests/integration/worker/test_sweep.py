"""The email queue's sweep against real Redis: a job caught between a worker's dequeue and
its ACTIVE mark is left alone (saq's own sweep aborted it and rolled back its attempt
count), while a job whose worker died in that window is still swept and re-queued."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from saq import Job
from saq.job import Status

from services.worker import queue as worker_queue
from services.worker.queue import EmailQueue
from tests.support.infra import Infra


@pytest.fixture
async def email_queue(infra: Infra, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[EmailQueue]:
    monkeypatch.setattr(worker_queue, "SWEEP_SECOND_LOOK_SECONDS", 0.3)
    client = aioredis.Redis.from_url(infra.redis_url)
    keys = [k async for k in client.scan_iter(match="saq:*emails*")]
    if keys:
        await client.delete(*keys)
    queue = EmailQueue(client, sweep_abort=0.1)
    await queue.connect()
    yield queue
    await queue.disconnect()


async def dequeue_with_attempts(queue: EmailQueue, attempts: int) -> Job:
    """A job that has run `attempts - 1` times, just moved to the active list by a worker
    that has not marked it ACTIVE yet."""
    job = await queue.enqueue("send_email", retries=10, outbox_id="x")
    assert job is not None
    job.attempts = attempts - 1
    await queue.update(job)
    dequeued = await queue.dequeue(timeout=1)
    assert dequeued is not None and dequeued.status == Status.QUEUED
    return dequeued


async def test_a_job_marked_active_during_the_second_look_is_not_swept(
    email_queue: EmailQueue,
) -> None:
    job = await dequeue_with_attempts(email_queue, attempts=3)

    async def worker_marks_it_active() -> None:
        await asyncio.sleep(0.1)  # inside the sweep's second look
        job.attempts += 1
        await job.update(status=Status.ACTIVE)

    swept, _ = await asyncio.gather(email_queue.sweep(lock=1), worker_marks_it_active())

    assert swept == []
    stored = await email_queue.job(job.key)
    assert stored is not None
    assert stored.status == Status.ACTIVE and stored.attempts == 3


async def test_a_job_left_queued_in_the_active_list_is_swept_and_requeued(
    email_queue: EmailQueue,
) -> None:
    job = await dequeue_with_attempts(email_queue, attempts=3)  # its worker died here

    swept = await email_queue.sweep(lock=1)

    assert swept == [job.id]
    stored = await email_queue.job(job.key)
    assert stored is not None and stored.status == Status.QUEUED
    assert stored.attempts == 2  # the lost run never started: nothing rolled back
    assert await email_queue.redis.lrange(email_queue._active, 0, -1) == []


async def test_a_stuck_active_job_is_swept_without_waiting(email_queue: EmailQueue) -> None:
    job = await dequeue_with_attempts(email_queue, attempts=1)
    job.attempts = 1
    job.heartbeat = 1
    await job.update(status=Status.ACTIVE)
    await asyncio.sleep(1.1)  # no heartbeat since

    swept = await email_queue.sweep(lock=1)

    assert swept == [job.id]
    stored = await email_queue.job(job.key)
    assert stored is not None and stored.status == Status.QUEUED and stored.attempts == 1
