"""initial: email deliveries (idempotency) and dead letters of the worker.

Revision ID: c9523c4e4fe1
Revises:
Create Date: 2026-11-28 15:53:28.562608
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "c9523c4e4fe1"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dead_emails",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("outbox_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("message", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("request_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("died_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("outbox_id"),
        schema="worker",
    )
    op.create_index(
        op.f("ix_worker_dead_emails_died_at"),
        "dead_emails",
        ["died_at"],
        unique=False,
        schema="worker",
    )
    op.create_table(
        "email_deliveries",
        sa.Column("outbox_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("template", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("message_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("outbox_id"),
        schema="worker",
    )


def downgrade() -> None:
    op.drop_table("email_deliveries", schema="worker")
    op.drop_index(op.f("ix_worker_dead_emails_died_at"), table_name="dead_emails", schema="worker")
    op.drop_table("dead_emails", schema="worker")
