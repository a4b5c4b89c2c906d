"""Events from the users service change accounts once, however often they are delivered;
the outbox relay publishes auth's own events to Redis Streams."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from jose import jwt
from sqlmodel import select

from services.auth.consumers import GROUP, build_consumer
from services.auth.models import Account, Inbox
from services.common.events import stream_name
from services.common.revocation import is_revoked
from services.common.streams import ensure_groups
from tests.integration.auth.support import (
    PASSWORD,
    auth_client,
    bearer,
    is_problem,
    login,
    new_email,
    register,
    verified_user,
)
from tests.support.polling import eventually

pytestmark = pytest.mark.usefixtures("infra")
ME = "/api/v1/auth/sessions"


async def publish(redis: Any, topic: str, data: dict[str, Any], event_id: str | None = None) -> str:
    event_id = event_id or str(uuid.uuid4())
    await redis.xadd(
        stream_name(topic),
        {"id": event_id, "topic": topic, "data": json.dumps(data), "request_id": ""},
    )
    return event_id


async def drain(app: Any) -> int:
    consumer = build_consumer(app.state.session_factory, app.state.redis)
    await ensure_groups(app.state.redis, list(consumer.handlers), GROUP)
    handled = 0
    while n := await consumer.poll(block_ms=50):
        handled += n
    return handled


async def account(app: Any, email: str) -> Account:
    async with app.state.session_factory() as session:
        result = await session.exec(select(Account).where(Account.email == email))
        return result.one()


async def test_deactivation_refuses_login_and_refresh_and_revokes_tokens() -> None:
    async with auth_client() as (app, client):
        await drain(app)  # start from a clean group position
        email, tokens = await verified_user(app, client)
        user_id = jwt.get_unverified_claims(tokens["access_token"])["sub"]
        event_id = await publish(app.state.redis, "user.deactivated", {"user_id": user_id})
        assert await drain(app) == 1
        assert is_problem(await client.get(ME, headers=bearer(tokens["access_token"])), 401)
        refused = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert refused.status_code in (401, 403)
        denied = await client.post(
            "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
        )
        assert is_problem(denied, 403)

        # A redelivery of the same event, after a reactivation, changes nothing.
        await publish(app.state.redis, "user.reactivated", {"user_id": user_id})
        await drain(app)
        await publish(app.state.redis, "user.deactivated", {"user_id": user_id}, event_id)
        await drain(app)
        assert (await account(app, email)).status == "active"
        await login(client, email)
        async with app.state.session_factory() as session:
            assert await session.get(Inbox, event_id) is not None


async def test_role_change_is_stored_and_old_tokens_die() -> None:
    async with auth_client() as (app, client):
        await drain(app)
        email, tokens = await verified_user(app, client)
        user_id = jwt.get_unverified_claims(tokens["access_token"])["sub"]
        await publish(app.state.redis, "user.role_changed", {"user_id": user_id, "role": "admin"})
        await publish(app.state.redis, "user.role_changed", {"user_id": user_id, "role": "root"})
        assert await drain(app) == 2
        assert (await account(app, email)).role == "admin"
        assert is_problem(await client.get(ME, headers=bearer(tokens["access_token"])), 401)
        await asyncio.sleep(0.01)  # the next token's iat must be after the revocation time
        fresh = await login(client, email)
        assert jwt.get_unverified_claims(fresh["access_token"])["role"] == "admin"
        assert (await client.get(ME, headers=bearer(fresh["access_token"]))).status_code == 200


async def test_deletion_disables_and_anonymises() -> None:
    async with auth_client() as (app, client):
        await drain(app)
        email, tokens = await verified_user(app, client)
        user_id = jwt.get_unverified_claims(tokens["access_token"])["sub"]
        await publish(app.state.redis, "user.deleted", {"user_id": user_id})
        await publish(app.state.redis, "user.reactivated", {"user_id": user_id})
        await publish(app.state.redis, "user.deactivated", {"user_id": str(uuid.uuid4())})
        await publish(app.state.redis, "user.deactivated", {"user_id": "not-a-uuid"})
        assert await drain(app) == 4
        async with app.state.session_factory() as session:
            row = await session.get(Account, uuid.UUID(user_id))
        assert row is not None and row.status == "deleted"
        assert email not in row.email and row.email.endswith(".invalid")
        assert is_problem(await client.get(ME, headers=bearer(tokens["access_token"])), 401)
        gone = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert is_problem(gone, 401)
        # The address can be registered again by its owner.
        await register(client, email)


async def test_background_relay_publishes_user_registered() -> None:
    async with auth_client(background_tasks=True) as (app, client):
        email = new_email()
        await register(client, email)

        async def published() -> list[dict[str, Any]]:
            entries = await app.state.redis.xrevrange(stream_name("user.registered"), count=20)
            return [
                json.loads(fields[b"data"])
                for _, fields in entries
                if json.loads(fields[b"data"]).get("email") == email
            ]

        found = await eventually(published, what="user.registered on the stream")
        assert found[0]["role"] == "user"
        names = {t.get_name() for t in app.state.background_tasks}
        assert names == {"auth_outbox_relay", "consume_events"}
        assert not any(t.done() for t in app.state.background_tasks)


@pytest.mark.parametrize(
    ("topic", "extra"),
    [
        ("user.deactivated", {}),
        ("user.role_changed", {"role": "admin"}),
        ("user.deleted", {}),
    ],
)
async def test_each_account_event_writes_the_redis_revocation(
    topic: str, extra: dict[str, Any]
) -> None:
    """The gateway and the other services only see Redis: auth must revoke there too,
    not only refuse logins and refreshes in its own database."""
    async with auth_client() as (app, client):
        await drain(app)
        _, tokens = await verified_user(app, client)
        claims = jwt.get_unverified_claims(tokens["access_token"])
        user_id = claims["sub"]
        key = f"revoked:user:{user_id}"
        await app.state.redis.delete(key)
        await publish(app.state.redis, topic, {"user_id": user_id, **extra})
        assert await drain(app) == 1
        revoked_before = await app.state.redis.get(key)
        assert revoked_before is not None, f"{topic} did not revoke the user's tokens"
        assert float(revoked_before) >= float(claims["iat"])
        principal = await app.state.token_verifier.verify(tokens["access_token"])
        assert await is_revoked(app.state.redis, principal)
