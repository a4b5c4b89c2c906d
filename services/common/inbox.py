"""Idempotent event handling: remember handled event ids in the consumer's own schema,
in the same transaction as the handler's writes, so a redelivery changes nothing.

    class Inbox(InboxBase, table=True):
        __tablename__ = "inbox"
        __table_args__ = {"schema": "users"}

    async with transaction(factory) as session:
        if not await first_delivery(session, Inbox, event.id):
            return
        ...  # the handler's writes, committed together with the inbox row
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.clock import utcnow


class InboxBase(SQLModel):
    event_id: str = Field(primary_key=True, max_length=64)
    topic: str = Field(max_length=100)
    handled_at: datetime = Field(
        default_factory=lambda: utcnow(),
        sa_type=DateTime(timezone=True),
        nullable=False,
    )


async def first_delivery(
    session: AsyncSession, model: type[InboxBase], event_id: str, topic: str = ""
) -> bool:
    """Record the event id; False if it was already handled (then do nothing)."""
    table: Any = model
    stmt = (
        insert(table)
        .values(event_id=event_id, topic=topic, handled_at=utcnow())
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(table.event_id)
    )
    result = await session.exec(stmt)
    return result.first() is not None
