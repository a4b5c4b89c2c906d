"""Issue 18: anything that can write to Redis could XADD a role change that makes
itself admin. Events are now signed per producer; auth's consumer, run as the service
runs it (consume_events), drops forged and unsigned entries and counts them."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from jose import jwt
from prometheus_client import REGISTRY

from services.auth.consumers import GROUP, consume_events
from services.common.events import signature, signing_key, stream_name
from services.common.streams import ensure_groups
from tests.integration.auth.support import PASSWORD, auth_client, settings, verified_user
from tests.support.polling import eventually

pytestmark = pytest.mark.usefixtures("infra")
TOPIC = "user.role_changed"


def rejected() -> float:
    value = REGISTRY.get_sample_value("events_rejected_total", {"group": GROUP, "topic": TOPIC})
    return value or 0.0


def entry(user_id: str, role: str) -> dict[str, str]:
    return {
        "id": str(uuid.uuid4()),
        "topic": TOPIC,
        "data": json.dumps({"user_id": user_id, "role": role}),
        "request_id": "",
        "created_at": "2026-01-01T00:00:00+00:00",
    }


async def test_a_forged_role_change_makes_nobody_admin() -> None:
    async with auth_client() as (app, client):
        redis: Any = app.state.redis
        await ensure_groups(redis, [TOPIC], GROUP)
        email, tokens = await verified_user(app, client)
        user_id = jwt.get_unverified_claims(tokens["access_token"])["sub"]
        before = rejected()
        unsigned = entry(user_id, "admin")
        badly_signed = {**entry(user_id, "admin"), "sig": "0" * 64}
        # Signed with another producer's key (catalog may not publish role changes).
        wrong_producer = entry(user_id, "admin")
        wrong_producer["sig"] = signature(signing_key(settings(), "catalog"), wrong_producer)
        # The users service's genuine event, last: once it is applied, the forged ones
        # before it in the stream have been read.
        genuine = entry(user_id, "user")
        genuine["sig"] = signature(signing_key(app.state.settings, "users"), genuine)
        for fields in (unsigned, badly_signed, wrong_producer, genuine):
            await redis.xadd(stream_name(TOPIC), fields)
        task = asyncio.create_task(consume_events(app))
        try:
            await eventually(lambda: rejected() - before >= 3, timeout=20, what="3 rejections")

            async def all_acknowledged() -> bool:
                pending = await redis.xpending(stream_name(TOPIC), GROUP)
                return not pending["pending"]

            await eventually(all_acknowledged, timeout=20, what="every entry acknowledged")
        finally:
            task.cancel()
        login = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        assert jwt.get_unverified_claims(login.json()["access_token"])["role"] == "user"
        assert rejected() - before == 3


def test_the_signature_covers_every_field() -> None:
    key = signing_key(settings(), "users")
    fields = entry(str(uuid.uuid4()), "user")
    sig = signature(key, fields)
    for name in fields:
        assert signature(key, {**fields, name: fields[name] + "x"}) != sig, name
    assert signature(signing_key(settings(), "auth"), fields) != sig
