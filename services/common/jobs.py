"""The email job queue (saq on Redis): the relay enqueues, the worker consumes.

The job key is the outbox row id: saq refuses a second job with a live key, so a
re-relayed row does not become a second email.
"""

from __future__ import annotations

from saq import Queue
from saq.queue.redis import RedisQueue

from services.common.outbox import OutboxBase
from services.common.redis import create_redis

EMAIL_QUEUE_NAME = "emails"
SEND_EMAIL_JOB = "send_email"
EMAIL_JOB_RETRIES = 8
EMAIL_JOB_TIMEOUT_SECONDS = 60


def email_queue(redis_url: str, timeout: float = 0.5) -> RedisQueue:
    """The producers' handle on the queue. Its client has socket timeouts (saq's own
    `from_url` has none), so a stalled Redis fails the relay's batch instead of hanging
    it; the relay then backs off and hands the rows over again later (same job keys).
    The worker dequeues with blocking reads and builds its own (services.worker.queue)."""
    return RedisQueue(create_redis(redis_url, timeout), name=EMAIL_QUEUE_NAME)


async def enqueue_email(queue: Queue, row: OutboxBase) -> None:
    await queue.enqueue(
        SEND_EMAIL_JOB,
        key=str(row.id),
        timeout=EMAIL_JOB_TIMEOUT_SECONDS,
        retries=EMAIL_JOB_RETRIES,
        retry_delay=1.0,
        retry_backoff=True,
        outbox_id=str(row.id),
        message=row.payload,
        request_id=row.request_id,
    )
