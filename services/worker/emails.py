"""The `send_email` job: render, send once per outbox id, retry with backoff, dead-letter.

Idempotency: the delivery table is checked before sending and written right after the
SMTP server accepted the message, so a job run twice sends a duplicate only if the
process dies between the server's acceptance and that commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from saq import Job

from services.common.cancel import pause
from services.common.context import request_id_var
from services.common.redis import REDIS_ERRORS
from services.common.sealing import InvalidToken, unseal
from services.worker import mailer, store
from services.worker.metrics import (
    EMAILS_DEAD,
    EMAILS_DUPLICATE,
    EMAILS_QUEUED,
    EMAILS_RETRIED,
    EMAILS_SENT,
)
from services.worker.queue import ExpectedRetry
from services.worker.rendering import TEMPLATES, RenderError, render
from services.worker.settings import WorkerSettings

log = logging.getLogger("services.worker.emails")

# Extra saq attempts beyond WORKER_MAX_ATTEMPTS, spent only when the worker's own
# dependencies (PostgreSQL) fail, so an outage of ours does not lose a message.
INFRA_SPARE_ATTEMPTS = 10


class EmailJobs:
    """The job functions, bound to the worker's settings and database."""

    def __init__(self, settings: WorkerSettings, factory: store.Factory) -> None:
        self.settings = settings
        self.factory = factory

    async def apply_policy(self, ctx: Any) -> None:
        """saq `before_process` hook: the worker, not the enqueuer, owns the retry policy."""
        job: Job = ctx["job"]
        s = self.settings
        job.retries = s.worker_max_attempts + INFRA_SPARE_ATTEMPTS
        job.retry_delay = s.worker_retry_delay_seconds
        job.retry_backoff = s.worker_retry_max_delay_seconds  # exponential, full jitter, capped
        job.timeout = s.worker_job_timeout_seconds
        job.heartbeat = s.worker_job_heartbeat_seconds
        await job.update()  # stored, so a sweep elsewhere sees the heartbeat deadline

    async def send_email(
        self,
        ctx: Any,
        *,
        outbox_id: str,
        message: dict[str, Any],
        request_id: str | None = None,
    ) -> str:
        token = request_id_var.set(request_id)
        try:
            return await self._send(ctx["job"], str(outbox_id), message, request_id)
        finally:
            request_id_var.reset(token)

    async def _send(
        self, job: Job, outbox_id: str, message: dict[str, Any], request_id: str | None
    ) -> str:
        template = message.get("template") if isinstance(message, dict) else None
        label = template if isinstance(template, str) and template in TEMPLATES else "unknown"
        if job.attempts == 1:
            EMAILS_QUEUED.labels(label).inc()
        if not isinstance(message, dict):
            return await self._dead(
                job, outbox_id, {}, request_id, "bad message: not an object", label
            )
        async with store.send_lock(self.factory, outbox_id) as acquired:
            if not acquired:
                raise ExpectedRetry("another run of this message is in progress")
            return await self._send_once(job, outbox_id, message, request_id, label)

    async def _send_once(
        self,
        job: Job,
        outbox_id: str,
        message: dict[str, Any],
        request_id: str | None,
        label: str,
    ) -> str:
        template = message.get("template")
        if await store.already_delivered(self.factory, outbox_id):
            EMAILS_DUPLICATE.inc()
            log.info("email already sent, skipped", extra={"outbox_id": outbox_id})
            return "duplicate"
        context = dict(message.get("context") or {})
        if message.get("sealed") is not None:
            try:
                context |= unseal(self.settings.email_link_secret, str(message["sealed"]))
            except (InvalidToken, ValueError):
                # Kept sealed in the dead letter: replayable once EMAIL_LINK_SECRET matches.
                reason = "sealed context cannot be opened (EMAIL_LINK_SECRET differs from auth's?)"
                return await self._dead(job, outbox_id, message, request_id, reason, label)
        try:
            rendered = render(str(template), context, message.get("locale"))
            envelope = mailer.Envelope(
                to=str(message["to"]), outbox_id=outbox_id, request_id=request_id
            )
            msg = mailer.build_message(rendered, envelope, self.settings)
        except (RenderError, KeyError, ValueError, TypeError) as exc:
            bad = f"bad message: {type(exc).__name__}"
            reason = str(exc) if isinstance(exc, RenderError) else bad
            return await self._dead(job, outbox_id, message, request_id, reason, label)
        try:
            async with heartbeat(job, self.settings.worker_job_heartbeat_seconds):
                await mailer.send(msg, self.settings)
        except mailer.SendError as exc:
            if exc.permanent or job.attempts >= self.settings.worker_max_attempts:
                return await self._dead(job, outbox_id, message, request_id, str(exc), label)
            EMAILS_RETRIED.labels(label).inc()
            log.warning(
                "email send failed, will retry",
                extra={"outbox_id": outbox_id, "attempt": job.attempts, "reason": str(exc)},
            )
            raise ExpectedRetry(str(exc)) from None
        await store.record_delivery(
            self.factory,
            outbox_id=outbox_id,
            template=label,
            message_id=str(msg["Message-ID"]),
            attempts=job.attempts,
        )
        EMAILS_SENT.labels(label).inc()
        log.info(
            "email sent", extra={"outbox_id": outbox_id, "template": label, "attempt": job.attempts}
        )
        return "sent"

    async def _dead(
        self,
        job: Job,
        outbox_id: str,
        message: dict[str, Any],
        request_id: str | None,
        reason: str,
        label: str,
    ) -> str:
        await store.record_dead(
            self.factory,
            outbox_id=outbox_id,
            message=message,
            request_id=request_id,
            error=reason,
            attempts=job.attempts,
        )
        EMAILS_DEAD.labels(label).inc()
        log.error(
            "email dead-lettered",
            extra={"outbox_id": outbox_id, "attempt": job.attempts, "reason": reason},
        )
        return "dead"


@contextlib.asynccontextmanager
async def heartbeat(job: Job, every_seconds: int) -> AsyncIterator[None]:
    """Touch the job while a slow send runs, so only a dead worker's job looks stuck."""

    async def beat() -> None:
        while True:
            await pause(max(every_seconds / 3, 0.2))
            try:
                await job.update()
            except REDIS_ERRORS:
                log.warning("job heartbeat failed", extra={"outbox_id": job.key})

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
