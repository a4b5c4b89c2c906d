"""Outbox -> relay -> saq -> worker -> SMTP, with real PostgreSQL, Redis and SMTP server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import pytest
import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.jobs import email_queue, enqueue_email
from services.common.outbox import OutboxBase, add_email, relay_batch
from services.worker.app import create_app
from services.worker.mailer import message_id
from services.worker.models import DeadEmail, EmailDelivery
from services.worker.settings import WorkerSettings
from tests.integration.worker.models import MailOutbox
from tests.integration.worker.smtp import SmtpSink, free_port
from tests.support.asgi import running
from tests.support.infra import Infra
from tests.support.polling import eventually

Factory = async_sessionmaker[AsyncSession]
LINK = "https://app.test/verify-email?token=t0k3n"


async def write_email(factory: Factory, to: str = "ann@example.com", locale: str = "en") -> str:
    """A business transaction that queues an email in its outbox, committed."""
    async with factory() as session:
        row = add_email(
            session,
            MailOutbox,
            template="verify_email",
            to=to,
            context={"link": LINK},
            locale=locale,
        )
        await session.commit()
        return str(row.id)


async def relay(factory: Factory, redis_url: str) -> int:
    queue = email_queue(redis_url)

    async def publish(row: OutboxBase) -> None:
        await enqueue_email(queue, row)

    try:
        return await relay_batch(factory, MailOutbox, publish, service="test")
    finally:
        await queue.disconnect()


async def delivered(factory: Factory, outbox_id: str) -> EmailDelivery | None:
    async with factory() as session:
        return await session.get(EmailDelivery, outbox_id)


async def dead(factory: Factory, outbox_id: str) -> DeadEmail | None:
    async with factory() as session:
        rows = await session.exec(select(DeadEmail).where(DeadEmail.outbox_id == outbox_id))
        return rows.scalars().first()


def metric(body: str, name: str) -> float:
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_an_outbox_email_is_delivered_once(
    factory: Factory, settings: WorkerSettings, smtp: SmtpSink, redis: aioredis.Redis
) -> None:
    outbox_id = await write_email(factory, locale="fr")
    assert await relay(factory, settings.redis_url) == 1
    async with running(create_app(settings)) as client:
        before = metric((await client.get("/metrics")).text, "emails_sent_total")
        assert await eventually(lambda: delivered_check(factory, outbox_id), timeout=15)
        # A second relay of the same row (a relay crash before its commit) and a job
        # run again after success both leave one message.
        queue = email_queue(settings.redis_url)
        row = MailOutbox(
            id=uuid.UUID(outbox_id),
            kind="email",
            topic="verify_email",
            payload={
                "template": "verify_email",
                "to": "ann@example.com",
                "locale": "fr",
                "context": {"link": LINK},
            },
        )
        await enqueue_email(queue, row)
        await queue.disconnect()
        assert await eventually(lambda: queue_empty(redis), timeout=15)

        async def duplicate_skipped() -> bool:
            # Dequeued is not done: wait for the second run to finish and count itself.
            body = (await client.get("/metrics")).text
            return metric(body, "emails_duplicate_skipped_total") >= 1

        assert await eventually(duplicate_skipped, timeout=15)
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        body = (await client.get("/metrics")).text
    got = smtp.handler.by_message_id(message_id(outbox_id, settings.mail_from))
    assert len(got) == 1
    assert got[0]["Subject"] == "Confirmez votre adresse e-mail"
    assert got[0]["To"] == "ann@example.com"
    assert metric(body, "emails_sent_total") - before == 1
    assert metric(body, "emails_duplicate_skipped_total") >= 1
    assert "email_queue_depth" in body and "email_queue_oldest_age_seconds" in body
    assert await relay(factory, settings.redis_url) == 0  # the row was marked published


async def delivered_check(factory: Factory, outbox_id: str) -> bool:
    return await delivered(factory, outbox_id) is not None


async def queue_empty(redis: aioredis.Redis) -> bool:
    return (await redis.zcard("saq:emails:incomplete")) == 0


async def test_a_refusing_smtp_server_delays_the_email_until_it_recovers(
    factory: Factory, settings: WorkerSettings, smtp: SmtpSink, redis: aioredis.Redis
) -> None:
    smtp.handler.refuse_code = 451
    smtp.handler.refuse_times = 3
    outbox_id = await write_email(factory)
    await relay(factory, settings.redis_url)
    async with running(create_app(settings)) as client:
        assert await eventually(lambda: delivered_check(factory, outbox_id), timeout=15)
        body = (await client.get("/metrics")).text
    record = await delivered(factory, outbox_id)
    mid = message_id(outbox_id, settings.mail_from)
    assert record is not None and record.attempts == 4
    assert smtp.handler.attempts_by_id[mid] == 4
    assert len(smtp.handler.by_message_id(mid)) == 1
    assert metric(body, "emails_retried_total") >= 3
    assert await dead(factory, outbox_id) is None


async def test_a_stopped_smtp_server_delays_the_email_until_it_is_back(
    factory: Factory, settings: WorkerSettings, smtp: SmtpSink, redis: aioredis.Redis
) -> None:
    smtp.stop()
    outbox_id = await write_email(factory)
    await relay(factory, settings.redis_url)
    async with running(create_app(settings)):
        await asyncio.sleep(0.6)  # a few refused connections
        assert await delivered(factory, outbox_id) is None
        smtp.start()
        assert await eventually(lambda: delivered_check(factory, outbox_id), timeout=15)
    record = await delivered(factory, outbox_id)
    assert record is not None and record.attempts >= 2
    assert len(smtp.handler.by_message_id(message_id(outbox_id, settings.mail_from))) == 1


async def test_redis_down_at_commit_keeps_the_row_until_redis_returns(
    factory: Factory, settings: WorkerSettings, smtp: SmtpSink, redis: aioredis.Redis
) -> None:
    outbox_id = await write_email(factory)  # the request's transaction commits
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(Exception):  # noqa: B017 - any connection error: it must not pass
        await relay(factory, dead_redis)
    async with factory() as session:
        row = await session.get(MailOutbox, uuid.UUID(outbox_id))
        assert row is not None and row.published_at is None  # still waiting
    assert await relay(factory, settings.redis_url) == 1  # Redis is back
    async with running(create_app(settings)):
        assert await eventually(lambda: delivered_check(factory, outbox_id), timeout=15)
    assert len(smtp.handler.by_message_id(message_id(outbox_id, settings.mail_from))) == 1


def run_dead_command(infra: Infra, *args: str) -> str:
    env = {**os.environ, "DATABASE_URL": infra.database_url, "REDIS_URL": infra.redis_url}
    done = subprocess.run(
        [sys.executable, "-m", "services.worker.dead", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "t0k3n" not in done.stdout + done.stderr  # links carry tokens: never printed
    return done.stdout


async def test_a_message_that_always_fails_dies_and_is_delivered_after_replay(
    factory: Factory, infra: Infra, smtp: SmtpSink, redis: aioredis.Redis
) -> None:
    from tests.integration.worker.conftest import fast_settings

    settings = fast_settings(infra, smtp, worker_max_attempts=3)
    smtp.handler.refuse_code = 451  # always
    outbox_id = await write_email(factory, to="bob@example.com")
    await relay(factory, settings.redis_url)
    async with running(create_app(settings)) as client:
        assert await eventually(lambda: dead_check(factory, outbox_id), timeout=15)
        body = (await client.get("/metrics")).text
        letter = await dead(factory, outbox_id)
        assert letter is not None
        assert letter.attempts == 3 and "451" in letter.error
        assert letter.message["to"] == "bob@example.com"
        assert metric(body, "emails_dead_total") >= 1
        assert await delivered(factory, outbox_id) is None

        listing = run_dead_command(infra, "list")
        assert outbox_id in listing and "b***@example.com" in listing
        smtp.handler.refuse_code = None  # the server is fixed
        out = run_dead_command(infra, "replay", "--id", outbox_id)
        assert f"{outbox_id} requeued" in out
        assert await eventually(lambda: delivered_check(factory, outbox_id), timeout=15)
    assert len(smtp.handler.by_message_id(message_id(outbox_id, settings.mail_from))) == 1
    assert outbox_id not in run_dead_command(infra, "list")
    assert outbox_id in run_dead_command(infra, "list", "--replayed")


async def dead_check(factory: Factory, outbox_id: str) -> bool:
    return await dead(factory, outbox_id) is not None


async def test_a_permanent_refusal_dies_at_once(
    factory: Factory, settings: WorkerSettings, smtp: SmtpSink, redis: aioredis.Redis
) -> None:
    smtp.handler.refuse_code = 550
    outbox_id = await write_email(factory)
    await relay(factory, settings.redis_url)
    async with running(create_app(settings)):
        assert await eventually(lambda: dead_check(factory, outbox_id), timeout=15)
    letter = await dead(factory, outbox_id)
    assert letter is not None and letter.attempts == 1 and "550" in letter.error
    assert smtp.handler.attempts_by_id[message_id(outbox_id, settings.mail_from)] == 1
