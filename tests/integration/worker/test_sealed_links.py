"""Issue 18: reset and verification links are not kept usable at rest. After a register
and a password reset request, neither the auth outbox table, nor the queued job in
Redis, nor a dead letter holds a usable token; the worker still sends the link."""

from __future__ import annotations

import io
import json

import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from services.auth.models import Outbox
from services.common.jobs import email_queue, enqueue_email
from services.common.outbox import OutboxBase, relay_batch
from services.worker.app import create_app
from services.worker.dead import replay
from services.worker.models import DeadEmail
from services.worker.settings import WorkerSettings
from tests.integration.auth.support import PASSWORD, auth_client, new_email, outbox, token_from
from tests.integration.worker.smtp import SmtpSink
from tests.support.asgi import running
from tests.support.polling import eventually

Factory = async_sessionmaker[AsyncSession]


async def redis_dump(redis: aioredis.Redis) -> bytes:
    """Every string and list value of the queue's keys: what Redis read access shows."""
    out = b""
    async for key in redis.scan_iter(match="saq:*"):
        kind = await redis.type(key)
        if kind == b"string":
            out += await redis.get(key) or b""
        elif kind == b"list":
            out += b"".join(await redis.lrange(key, 0, -1))
        elif kind == b"hash":
            out += b"".join(v for v in (await redis.hgetall(key)).values())
        elif kind == b"zset":
            out += b"".join(m for m, _ in await redis.zrange(key, 0, -1, withscores=True))
    return out


async def test_links_are_sealed_in_outbox_queue_and_dead_letters(
    factory: Factory, settings: WorkerSettings, smtp: SmtpSink, redis: aioredis.Redis
) -> None:
    async with auth_client() as (app, client):
        email = new_email()
        await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        await client.post("/api/v1/auth/password/forgot", json={"email": email})
        rows = await outbox(app, to=email)
        assert {r.topic for r in rows} == {"verify_email", "reset_password"}
        tokens = [token_from(r.payload) for r in rows]  # opened with the secret
        # 1. The outbox table, before the relay: sealed only.
        for row in rows:
            assert not any(t in json.dumps(row.payload) for t in tokens), row.payload

        # 2. The relay hands them to the queue; the job in Redis holds the sealed form.
        queue = email_queue(settings.redis_url)

        async def publish(row: OutboxBase) -> None:
            if row.payload.get("to") == email:
                await enqueue_email(queue, row)

        try:
            # Earlier tests left unpublished rows: relay until ours are out too.
            while await relay_batch(app.state.session_factory, Outbox, publish, service="auth"):
                pass
        finally:
            await queue.disconnect()
        queued = await redis_dump(redis)
        assert email.encode() in queued  # the dump does show the jobs
        assert not any(t.encode() in queued for t in tokens)
        # The published rows keep no link at all, not even sealed.
        for row in await outbox(app, to=email):
            assert row.published_at is not None and "sealed" not in row.payload
            assert not any(t in json.dumps(row.payload) for t in tokens)

        # 3. A worker with another secret cannot open them: dead letters, still sealed.
        wrong = settings.model_copy(update={"email_link_secret": "not-the-auth-secret" * 2})
        async with running(create_app(wrong)):

            async def both_dead() -> bool:
                async with factory() as session:
                    got = await session.exec(select(DeadEmail))
                    return len([d for d in got.scalars() if d.message.get("to") == email]) == 2

            assert await eventually(both_dead, timeout=15)
        async with factory() as session:
            dead = [d for d in (await session.exec(select(DeadEmail))).scalars()]
        for letter in dead:
            assert not any(t in json.dumps(letter.message) for t in tokens)
            assert "EMAIL_LINK_SECRET" in letter.error
        after = await redis_dump(redis)
        assert not any(t.encode() in after for t in tokens)
        assert not [m for m in smtp.handler.messages if email in str(m["To"])]

        # 4. Replayed to a worker with auth's secret, the dead letters are sent, links and all.
        queue = email_queue(settings.redis_url)
        try:
            assert await replay(factory, queue, ids=None, out=io.StringIO()) == 2
        finally:
            await queue.disconnect()
        async with running(create_app(settings)):

            async def both_sent() -> bool:
                return len([m for m in smtp.handler.messages if email in str(m["To"])]) == 2

            assert await eventually(both_sent, timeout=15)
        bodies = " ".join(
            str(part.get_payload(decode=True))
            for m in smtp.handler.messages
            if email in str(m["To"])
            for part in m.walk()
            if not part.is_multipart()
        )
        assert all(t in bodies for t in tokens)
