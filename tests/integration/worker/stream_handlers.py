"""An idempotent event handler: inbox row + effect row in one transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.inbox import first_delivery
from services.common.streams import Event, Handler
from tests.integration.worker.models import Effect, EventInbox


def effect_handler(
    factory: async_sessionmaker[AsyncSession],
    consumer: str,
    after_commit: Callable[[str], Awaitable[None]] | None = None,
) -> Handler:
    async def handle(event: Event) -> None:
        async with factory() as session, session.begin():
            if await first_delivery(session, EventInbox, event.id, event.topic):
                session.add(Effect(event_id=event.id, consumer=consumer))
        if after_commit is not None:
            await after_commit(event.id)

    return handle
