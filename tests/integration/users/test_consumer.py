"""The `user.registered` consumer: idempotent under redelivery, resumes after a crash."""

from __future__ import annotations

import asyncio
import json
import uuid

from fastapi import FastAPI
from sqlalchemy import text

from services.common.events import signature, signing_key, stream_name
from services.common.state import provided
from services.common.streams import _decode, ensure_groups
from services.users.consumers import build_consumer
from services.users.state import UsersState
from tests.support.polling import eventually

TOPIC = "user.registered"


async def publish(app: FastAPI, event_id: str, user_id: str, email: str) -> None:
    data = {
        "user_id": user_id,
        "email": email,
        "role": "user",
        "created_at": "2026-01-02T03:04:05+00:00",
    }
    fields = {"id": event_id, "topic": TOPIC, "data": json.dumps(data), "request_id": ""}
    # Signed as auth signs it: the service's consumer drops anything else.
    fields["sig"] = signature(signing_key(app.state.settings, "auth"), fields)
    await app.state.redis.xadd(stream_name(TOPIC), fields)


async def profile_rows(app: FastAPI, ids: list[str]) -> list[tuple[str, str, int]]:
    async with app.state.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT id::text, email, version FROM users.profiles WHERE id::text = ANY(:ids)"),
            {"ids": ids},
        )
        return [tuple(r) for r in rows]


async def fresh_group(app: FastAPI) -> str:
    """A group of its own that starts at the stream's end: earlier tests' events stay out."""
    group = f"users-test-{uuid.uuid4().hex[:8]}"
    # Every stream the consumer reads (user.role_changed too), each from its end.
    topics = [TOPIC, "user.role_changed"]
    for topic in topics:
        await app.state.redis.xgroup_create(stream_name(topic), group, id="$", mkstream=True)
    await ensure_groups(app.state.redis, topics, group)  # the service's own call: a no-op now
    return group


def consumer(app: FastAPI, group: str, name: str, claim_idle_ms: int = 30_000):
    return build_consumer(
        app.state.redis,
        app.state.session_factory,
        provided(app, UsersState).profile_cache,
        group=group,
        consumer=name,
        claim_idle_ms=claim_idle_ms,
        batch=100,
        block_ms=50,
    )


async def test_redelivered_events_change_nothing(app: FastAPI, client) -> None:
    group = await fresh_group(app)
    user_id, event_id = str(uuid.uuid4()), str(uuid.uuid4())
    for _ in range(3):  # the relay re-sent the same outbox row
        await publish(app, event_id, user_id, "Redo@Example.test")
    worker = consumer(app, group, "c1")
    handled = 0
    while (n := await worker.poll()) > 0:
        handled += n
    assert handled >= 3
    assert await profile_rows(app, [user_id]) == [(user_id, "redo@example.test", 1)]
    pending = await app.state.redis.xpending(stream_name(TOPIC), group)
    assert pending["pending"] == 0


async def test_malformed_event_is_acknowledged_not_retried_forever(app: FastAPI, client) -> None:
    group = await fresh_group(app)
    await app.state.redis.xadd(
        stream_name(TOPIC),
        {
            "id": str(uuid.uuid4()),
            "topic": TOPIC,
            "data": json.dumps({"user_id": "nope"}),
        },
    )
    worker = consumer(app, group, "c1")
    while await worker.poll() > 0:
        pass
    assert (await app.state.redis.xpending(stream_name(TOPIC), group))["pending"] == 0


async def test_consumer_killed_mid_batch_is_resumed_by_another(app: FastAPI, client) -> None:
    group = await fresh_group(app)
    users = [str(uuid.uuid4()) for _ in range(30)]
    for i, user_id in enumerate(users):
        await publish(app, str(uuid.uuid4()), user_id, f"crash{i}@example.test")

    dying = consumer(app, group, "dying")
    result = await app.state.redis.xreadgroup(group, "dying", {stream_name(TOPIC): ">"}, count=30)
    entries = [e for _stream, messages in result for e in messages]
    mine = [e for e in entries if e[1][b"data"] and json.loads(e[1][b"data"])["user_id"] in users]
    assert len(mine) == 30
    # It handled and acked 10, handled (committed) 5 more but died before acking them,
    # and never got to the last 15.
    for stream_id, fields in mine[:10]:
        assert await dying.handle(_decode(stream_id, fields))
    for stream_id, fields in mine[10:15]:
        await dying.handlers[TOPIC](_decode(stream_id, fields))
    pending = await app.state.redis.xpending(stream_name(TOPIC), group)
    assert pending["pending"] >= 20

    await asyncio.sleep(0.1)
    rescuer = consumer(app, group, "rescuer", claim_idle_ms=50)
    assert await rescuer.reclaim() >= 20
    assert (await app.state.redis.xpending(stream_name(TOPIC), group))["pending"] == 0

    rows = await profile_rows(app, users)
    assert sorted(r[0] for r in rows) == sorted(users)  # every profile exactly once
    assert all(version == 1 for _, _, version in rows)  # none applied twice
    emails = {r[1] for r in rows}
    assert emails == {f"crash{i}@example.test" for i in range(30)}


async def test_background_consumer_runs_in_the_app(users_settings) -> None:
    from services.users.app import create_app
    from tests.support.asgi import running
    from tests.support.tokens import jwks_fetcher

    app = create_app(
        users_settings.model_copy(update={"background_tasks": True}), jwks_fetcher=jwks_fetcher
    )
    async with running(app):
        user_id = str(uuid.uuid4())
        await publish(app, str(uuid.uuid4()), user_id, "live@example.test")
        await eventually(lambda: profile_rows(app, [user_id]), what="the profile created")
        assert await profile_rows(app, [user_id]) == [(user_id, "live@example.test", 1)]
