"""Events from the users service, applied idempotently (inbox row in the same transaction)."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from services.auth.models import Account, Inbox
from services.auth.rules import ACTIVE, account_by_id, revoke_all_sessions
from services.common.clock import utcnow
from services.common.db import transaction
from services.common.events import EventVerifier
from services.common.inbox import first_delivery
from services.common.revocation import revoke_user_tokens
from services.common.streams import Event, Handler, StreamConsumer

log = logging.getLogger("services.auth.consumers")

GROUP = "auth"
ROLES = {"user", "admin"}
BLOCK_MS = 1000

Apply = Callable[[AsyncSession, Account, Event], Awaitable[bool]]


async def _deactivate(session: AsyncSession, account: Account, event: Event) -> bool:
    account.status = "disabled"
    return True


async def _reactivate(session: AsyncSession, account: Account, event: Event) -> bool:
    if account.status == "deleted":
        return False  # a deleted account never comes back
    account.status = ACTIVE
    return False  # nothing to revoke: the user simply logs in again


async def _change_role(session: AsyncSession, account: Account, event: Event) -> bool:
    role = event.data.get("role")
    if role not in ROLES:
        log.warning("ignoring role change to an unknown role", extra={"event_id": event.id})
        return False
    if account.role == role:
        return False  # e.g. auth's own `manage promote` event coming back: nothing to revoke
    account.role = str(role)
    return True


async def _delete(session: AsyncSession, account: Account, event: Event) -> bool:
    account.status = "deleted"
    # The address is personal data: replace it, keeping the unique constraint happy.
    account.email = f"deleted-{account.id}@invalid.invalid"
    account.email_verified = False
    return True


APPLY: dict[str, Apply] = {
    "user.deactivated": _deactivate,
    "user.reactivated": _reactivate,
    "user.role_changed": _change_role,
    "user.deleted": _delete,
}


def handler_for(
    factory: async_sessionmaker[AsyncSession], redis: aioredis.Redis, topic: str
) -> Handler:
    apply = APPLY[topic]

    async def handle(event: Event) -> None:
        revoke = False
        user_id = str(event.data.get("user_id", ""))
        async with transaction(factory) as session:
            if not await first_delivery(session, Inbox, event.id, event.topic):
                return
            account = await account_by_id(session, user_id)
            if account is None:
                return
            # Every change here revokes the user's tokens: new ones carry the new state.
            revoke = await apply(session, account, event)
            account.updated_at = utcnow()
            session.add(account)
            if account.status != ACTIVE:
                # Refresh tokens of a disabled or deleted account must die too.
                await revoke_all_sessions(session, account.id, event.topic.removeprefix("user."))
        if revoke:
            # After the commit: a crash before it redelivers the event, which revokes again.
            await revoke_user_tokens(redis, user_id, at=time.time())

    return handle


def build_consumer(
    factory: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    verifier: EventVerifier | None = None,
) -> StreamConsumer:
    return StreamConsumer(
        redis,
        group=GROUP,
        consumer=f"auth-{socket.gethostname()}-{os.getpid()}",
        handlers={topic: handler_for(factory, redis, topic) for topic in APPLY},
        block_ms=BLOCK_MS,
        verifier=verifier,
    )


async def consume_events(app: FastAPI) -> None:
    """A ServiceSpec.background task on the shared Redis client (StreamConsumer keeps its
    blocking reads within that client's socket timeout)."""
    verifier = EventVerifier(app.state.settings)  # only events signed by users count
    await build_consumer(app.state.session_factory, app.state.redis, verifier).run()
