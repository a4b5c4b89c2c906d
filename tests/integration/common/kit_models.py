"""Tables used only by the kit's own tests, in a schema no service owns."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Column, DateTime, Index, Numeric
from sqlmodel import Field, SQLModel

from services.common.outbox import OutboxBase

SCHEMA = "kit"


class KitItem(SQLModel, table=True):
    __tablename__ = "items"
    __table_args__ = (Index("ix_kit_items_price_id", "price", "id"), {"schema": SCHEMA})

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str
    price: Decimal = Field(sa_column=Column(Numeric(12, 2), nullable=False))
    created_at: datetime = Field(
        default_factory=lambda: datetime.now(UTC),
        sa_column=Column(DateTime(timezone=True), nullable=False),
    )


class KitOutbox(OutboxBase, table=True):
    __tablename__ = "outbox"
    __table_args__ = {"schema": SCHEMA}
