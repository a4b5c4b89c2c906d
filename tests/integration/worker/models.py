"""Tables only the worker's tests use, in a schema no service owns: an outbox (the
producer side of email jobs), an inbox and an effects table (the consumer side of events)."""

from __future__ import annotations

from sqlmodel import Field, SQLModel

from services.common.inbox import InboxBase
from services.common.outbox import OutboxBase

SCHEMA = "worker_test"


class MailOutbox(OutboxBase, table=True):
    __tablename__ = "outbox"
    __table_args__ = {"schema": SCHEMA}


class EventInbox(InboxBase, table=True):
    __tablename__ = "inbox"
    __table_args__ = {"schema": SCHEMA}


class Effect(SQLModel, table=True):
    """One row per handled event: a second row for one event would be a double effect."""

    __tablename__ = "effects"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(max_length=64)
    consumer: str = Field(max_length=64)


TABLES = (MailOutbox, EventInbox, Effect)
