"""Tables of the auth service, all in the schema "auth"."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Index, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from services.common.clock import utcnow
from services.common.inbox import InboxBase
from services.common.outbox import OutboxBase

SCHEMA = "auth"
TZ = DateTime(timezone=True)


class Account(SQLModel, table=True):
    """A login identity. The email is stored normalised (lower case), unique."""

    __tablename__ = "accounts"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    email: str = Field(max_length=320, unique=True)
    password_hash: str = Field(max_length=255)
    role: str = Field(default="user", max_length=16)
    status: str = Field(default="active", max_length=16)  # active | disabled | deleted
    email_verified: bool = Field(default=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TZ)


class Session(SQLModel, table=True):
    """One login on one device; also the refresh-token family (RFC 9700 reuse detection)."""

    __tablename__ = "sessions"
    __table_args__ = (
        Index(
            "ix_sessions_account_active", "account_id", postgresql_where=text("revoked_at IS NULL")
        ),
        {"schema": SCHEMA},
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    account_id: uuid.UUID = Field(foreign_key=f"{SCHEMA}.accounts.id", ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    last_used_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    expires_at: datetime = Field(sa_type=TZ)
    user_agent: str | None = Field(default=None, max_length=512)
    ip: str | None = Field(default=None, max_length=64)
    revoked_at: datetime | None = Field(default=None, sa_type=TZ)
    revoke_reason: str | None = Field(default=None, max_length=32)


class RefreshToken(SQLModel, table=True):
    """A refresh token, by SHA-256 hash only. `used_at` set = spent; presented again = reuse."""

    __tablename__ = "refresh_tokens"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    session_id: uuid.UUID = Field(
        foreign_key=f"{SCHEMA}.sessions.id", ondelete="CASCADE", index=True
    )
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    expires_at: datetime = Field(sa_type=TZ)
    used_at: datetime | None = Field(default=None, sa_type=TZ)


class OneTimeToken(SQLModel, table=True):
    """Email verification and password reset tokens, by SHA-256 hash only, single use."""

    __tablename__ = "one_time_tokens"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    account_id: uuid.UUID = Field(
        foreign_key=f"{SCHEMA}.accounts.id", ondelete="CASCADE", index=True
    )
    purpose: str = Field(max_length=16)  # verify_email | reset_password
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    expires_at: datetime = Field(sa_type=TZ)
    used_at: datetime | None = Field(default=None, sa_type=TZ)


class SigningKey(SQLModel, table=True):
    """An RS256 key pair shared by every worker and replica; the private half encrypted."""

    __tablename__ = "signing_keys"
    __table_args__ = {"schema": SCHEMA}

    kid: str = Field(primary_key=True, max_length=64)
    private_key_encrypted: str
    public_jwk: dict[str, Any] = Field(sa_type=JSONB)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    activates_at: datetime = Field(default_factory=utcnow, sa_type=TZ)
    retired_at: datetime | None = Field(default=None, sa_type=TZ)


class Outbox(OutboxBase, table=True):
    __tablename__ = "outbox"
    __table_args__ = {"schema": SCHEMA}


class Inbox(InboxBase, table=True):
    __tablename__ = "inbox"
    __table_args__ = {"schema": SCHEMA}


metadata = SQLModel.metadata
