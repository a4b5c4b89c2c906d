"""Tables of the users service, all in the schema "users"."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, Index, func, text
from sqlmodel import Field, SQLModel

from services.common.clock import utcnow
from services.common.inbox import InboxBase
from services.common.outbox import OutboxBase

SCHEMA = "users"
TZ = DateTime(timezone=True)


class Profile(SQLModel, table=True):
    """A user's profile (id = the auth account id); also the admin directory row.

    `display_name` is "" until the user sets one, so the name sort needs no NULL handling.
    """

    __tablename__ = "profiles"
    __table_args__ = (
        # Keyset orderings (a unique tie-breaker last).
        Index("ix_users_profiles_created_id", "created_at", "id"),
        Index("ix_users_profiles_name_id", text("lower(display_name)"), "id"),
        {"schema": SCHEMA},
    )

    id: uuid.UUID = Field(primary_key=True)
    email: str | None = Field(default=None, max_length=320)
    display_name: str = Field(default="", max_length=100)
    bio: str | None = Field(default=None, max_length=1000)
    avatar_url: str | None = Field(default=None, max_length=2048)
    locale: str | None = Field(default=None, max_length=35)
    time_zone: str | None = Field(default=None, max_length=64)
    role: str = Field(default="user", max_length=16)  # user | admin
    status: str = Field(default="active", max_length=16)  # active | disabled | deleted
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    version: int = Field(default=1)


# Case-insensitive prefix search (LIKE 'abc%'), served whatever the database collation.
_columns = Profile.__table__.c  # type: ignore[attr-defined]
Index(
    "ix_users_profiles_email_prefix",
    func.lower(_columns.email).label("email_lower"),
    postgresql_ops={"email_lower": "text_pattern_ops"},
)
Index(
    "ix_users_profiles_name_prefix",
    func.lower(_columns.display_name).label("name_lower"),
    postgresql_ops={"name_lower": "text_pattern_ops"},
)


class Outbox(OutboxBase, table=True):
    __tablename__ = "outbox"
    __table_args__ = {"schema": SCHEMA}


class Inbox(InboxBase, table=True):
    __tablename__ = "inbox"
    __table_args__ = {"schema": SCHEMA}


metadata = SQLModel.metadata
