"""Durable records of the worker in PostgreSQL: deliveries (idempotency) and dead letters."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.clock import utcnow
from services.common.db import transaction
from services.worker.models import DeadEmail, EmailDelivery

Factory = async_sessionmaker[AsyncSession]
_delivery: Any = EmailDelivery
_dead: Any = DeadEmail


@asynccontextmanager
async def send_lock(factory: Factory, outbox_id: str) -> AsyncIterator[bool]:
    """A PostgreSQL advisory lock per outbox id, held while a message is checked, sent and
    recorded: two runs of one job at once (a saq sweep racing a dequeue, two replays)
    cannot both send. Yields False when another run holds it. A dead process' lock
    goes with its connection."""
    key = {"k": f"email:{outbox_id}"}
    async with factory() as session:
        conn = await session.connection()
        got = (
            await conn.execute(text("SELECT pg_try_advisory_lock(hashtextextended(:k, 0))"), key)
        ).scalar()
        try:
            yield bool(got)
        finally:
            if got:
                await conn.execute(text("SELECT pg_advisory_unlock(hashtextextended(:k, 0))"), key)
            await session.commit()


async def already_delivered(factory: Factory, outbox_id: str) -> bool:
    async with factory() as session:
        found = await session.exec(
            select(_delivery.outbox_id).where(_delivery.outbox_id == outbox_id)
        )
        return found.first() is not None


async def record_delivery(
    factory: Factory, *, outbox_id: str, template: str, message_id: str, attempts: int
) -> bool:
    """True if this is the first record for the outbox id (a racing twin loses)."""
    stmt = (
        insert(_delivery)
        .values(
            outbox_id=outbox_id,
            template=template,
            message_id=message_id,
            attempts=attempts,
            sent_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["outbox_id"])
        .returning(_delivery.outbox_id)
    )
    async with transaction(factory) as session:
        return (await session.exec(stmt)).first() is not None


async def record_dead(
    factory: Factory,
    *,
    outbox_id: str,
    message: dict[str, Any],
    request_id: str | None,
    error: str,
    attempts: int,
) -> None:
    """Keep the message for inspection and replay; a replayed message that dies again is
    updated in place (one row per outbox id)."""
    now = utcnow()
    stmt = insert(_dead).values(
        id=uuid.uuid4(),
        outbox_id=outbox_id,
        message=message,
        request_id=request_id,
        error=error[:2000],
        attempts=attempts,
        died_at=now,
        replayed_at=None,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["outbox_id"],
        set_={
            "message": stmt.excluded.message,
            "error": stmt.excluded.error,
            "attempts": _dead.attempts + stmt.excluded.attempts,
            "died_at": now,
            "replayed_at": None,
        },
    )
    async with transaction(factory) as session:
        await session.exec(stmt)


async def list_dead(
    factory: Factory, *, ids: list[str] | None = None, include_replayed: bool = False
) -> list[DeadEmail]:
    """Dead letters, oldest first; `ids` are outbox ids."""
    stmt = select(_dead).order_by(_dead.died_at, _dead.id)
    if ids is not None:
        stmt = stmt.where(_dead.outbox_id.in_(ids))
    if not include_replayed:
        stmt = stmt.where(_dead.replayed_at.is_(None))
    async with factory() as session:
        return list((await session.exec(stmt)).all())


async def mark_replayed(factory: Factory, rows: list[tuple[str, datetime]]) -> None:
    """Mark (outbox id, died_at) pairs replayed; a row that died again since is left alone."""
    async with transaction(factory) as session:
        for outbox_id, died_at in rows:
            await session.exec(
                update(_dead)
                .where(_dead.outbox_id == outbox_id, _dead.died_at == died_at)
                .values(replayed_at=utcnow())
            )
