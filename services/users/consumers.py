"""Events the users service consumes: `user.registered` creates (or completes) a profile;
`user.role_changed` from auth (`manage promote`) sets the role, so the two views agree.

At-least-once delivery made exactly-once in effect: the inbox row and the profile write
commit together, and the entry is acknowledged only after that commit (StreamConsumer).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from typing import Literal

import redis.asyncio as aioredis
from fastapi import FastAPI
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.cache import Cache
from services.common.db import transaction
from services.common.events import EventVerifier
from services.common.inbox import first_delivery
from services.common.state import provided
from services.common.streams import Event, Handler, StreamConsumer
from services.users.models import Inbox
from services.users.service import apply_role, invalidate, upsert_registered
from services.users.state import UsersState

GROUP = "users"
log = logging.getLogger("services.users.events")


class Registered(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user_id: uuid.UUID
    email: str = Field(min_length=3, max_length=320)
    role: Literal["user", "admin"] = "user"
    created_at: AwareDatetime | None = None


def on_registered(factory: async_sessionmaker[AsyncSession], cache: Cache) -> Handler:
    async def handle(event: Event) -> None:
        try:
            data = Registered.model_validate(event.data)
        except ValidationError:
            # A malformed event would fail forever: record it and let it be acknowledged.
            log.warning("dropping malformed user.registered", extra={"event_id": event.id})
            return
        async with transaction(factory) as session:
            if not await first_delivery(session, Inbox, event.id, event.topic):
                return
            await upsert_registered(session, data.user_id, data.email, data.role, data.created_at)
        await invalidate(cache, data.user_id)

    return handle


class RoleChanged(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user_id: uuid.UUID
    role: Literal["user", "admin"]


def on_role_changed(factory: async_sessionmaker[AsyncSession], cache: Cache) -> Handler:
    """Roles changed outside this service (auth's operator command). Our own PATCH events
    come back too and change nothing; stream order makes the last change win."""

    async def handle(event: Event) -> None:
        try:
            data = RoleChanged.model_validate(event.data)
        except ValidationError:
            log.warning("dropping malformed user.role_changed", extra={"event_id": event.id})
            return
        async with transaction(factory) as session:
            if not await first_delivery(session, Inbox, event.id, event.topic):
                return
            changed = await apply_role(session, data.user_id, data.role)
        if changed:
            await invalidate(cache, data.user_id)

    return handle


def build_consumer(
    redis: aioredis.Redis,
    factory: async_sessionmaker[AsyncSession],
    cache: Cache,
    *,
    group: str = GROUP,
    consumer: str | None = None,
    claim_idle_ms: int = 30_000,
    batch: int = 50,
    block_ms: int = 1000,
    verifier: EventVerifier | None = None,
) -> StreamConsumer:
    return StreamConsumer(
        redis,
        group=group,
        # Unique per process: a restarted worker's leftovers are reclaimed by XAUTOCLAIM.
        consumer=consumer or f"{socket.gethostname()}-{os.getpid()}",
        handlers={
            "user.registered": on_registered(factory, cache),
            "user.role_changed": on_role_changed(factory, cache),
        },
        batch=batch,
        block_ms=block_ms,
        claim_idle_ms=claim_idle_ms,
        verifier=verifier,
    )


BLOCK_MS = 1000


async def consume_events(app: FastAPI) -> None:
    """A `ServiceSpec.background` entry: consume forever (StreamConsumer retries on errors)."""
    settings = app.state.settings
    # The shared client: StreamConsumer keeps its blocking reads within its socket timeout.
    consumer = build_consumer(
        app.state.redis,
        app.state.session_factory,
        provided(app, UsersState).profile_cache,
        claim_idle_ms=settings.consumer_claim_idle_ms,
        batch=settings.consumer_batch,
        block_ms=BLOCK_MS,
        verifier=EventVerifier(settings),  # only events signed by auth count
    )
    await consumer.run()
