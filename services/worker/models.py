"""Tables of the worker, all in the schema "worker": deliveries and dead letters."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from services.common.clock import utcnow

SCHEMA = "worker"
TZ = DateTime(timezone=True)


class EmailDelivery(SQLModel, table=True):
    """One row per outbox id the SMTP server accepted: the idempotency record."""

    __tablename__ = "email_deliveries"
    __table_args__ = {"schema": SCHEMA}

    outbox_id: str = Field(primary_key=True, max_length=64)
    template: str = Field(max_length=64)
    message_id: str = Field(max_length=255)
    attempts: int = Field(default=1)
    sent_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class DeadEmail(SQLModel, table=True):
    """A message that failed for good: kept whole for inspection and replay."""

    __tablename__ = "dead_emails"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    outbox_id: str = Field(max_length=64, unique=True)
    message: dict[str, Any] = Field(sa_type=JSONB, nullable=False)
    request_id: str | None = Field(default=None, max_length=128)
    error: str = Field(sa_type=Text)
    attempts: int
    died_at: datetime = Field(default_factory=utcnow, sa_type=TZ, index=True)
    replayed_at: datetime | None = Field(default=None, sa_type=TZ)


metadata = SQLModel.metadata
