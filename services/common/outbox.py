"""Transactional outbox: a row written in the caller's transaction, relayed to Redis later.

Each service declares its own table in its own schema from `OutboxBase`:

    class Outbox(OutboxBase, table=True):
        __tablename__ = "outbox"
        __table_args__ = {"schema": "auth"}

`relay_batch` claims unpublished rows with FOR UPDATE SKIP LOCKED, hands each to
Redis (events to a stream, emails to the job queue with the row id as job key)
and marks it published in the same transaction, so several relays never hand
one row over twice; a crash between hand-off and commit re-sends the same id,
which the job queue and the idempotent consumers drop.

`run_relay` polls at `interval` after a write and backs off to `idle_max` while
nothing comes: every worker of every service runs one, and polling PostgreSQL five
times a second each (two transactions a poll) was ~11 % of a busy catalog worker. A
commit that carried an outbox row in this process wakes its relays at once, so the
process's own writes leave as fast as before; rows written by another process (a
CLI) wait at most `idle_max`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import DateTime, func, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common import metrics
from services.common.cancel import pause, raise_if_cancel_requested
from services.common.clock import utcnow
from services.common.context import request_id_var
from services.common.db import after_commit, transaction

log = logging.getLogger("services.outbox")

OutboxKind = Literal["event", "email"]


class OutboxBase(SQLModel):
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    kind: str = Field(max_length=16)
    topic: str = Field(max_length=100)
    # sa_type, not sa_column: a Column object would be shared by every subclass' table.
    payload: dict[str, Any] = Field(sa_type=JSONB, nullable=False)
    request_id: str | None = Field(default=None, max_length=128)
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_type=DateTime(timezone=True),
        nullable=False,
        sa_column_kwargs={"server_default": func.now()},
    )
    published_at: datetime | None = Field(
        default=None,
        sa_type=DateTime(timezone=True),
        nullable=True,
        index=True,
    )


# The wake-up events of the relays running in this process, with their loops.
_relays: dict[asyncio.Event, asyncio.AbstractEventLoop] = {}
_relays_lock = threading.Lock()
_WAKE_KEY = "outbox.wake_relays"


def wake_relays() -> None:
    """Make every relay of this process poll now (thread-safe; a no-op without relays)."""
    with _relays_lock:
        relays = list(_relays.items())
    for wake, loop in relays:
        if not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)


async def _wake_relays() -> None:
    wake_relays()


def add_message(
    session: AsyncSession,
    model: type[OutboxBase],
    kind: OutboxKind,
    topic: str,
    payload: dict[str, Any],
) -> OutboxBase:
    """Queue an event or an email in the caller's transaction (nothing leaves before commit)."""
    row = model(kind=kind, topic=topic, payload=payload, request_id=request_id_var.get())
    session.add(row)
    wake_relays_on_commit(session)
    return row


def wake_relays_on_commit(session: AsyncSession) -> None:
    """Wake this process's relays when `session` commits; for code that writes outbox rows
    with Core statements instead of add_message (bulk inserts)."""
    after_commit(session, _wake_relays, key=_WAKE_KEY)  # once per transaction, not per row


def add_event(
    session: AsyncSession, model: type[OutboxBase], topic: str, data: dict[str, Any]
) -> OutboxBase:
    return add_message(session, model, "event", topic, data)


def add_email(
    session: AsyncSession,
    model: type[OutboxBase],
    *,
    template: str,
    to: str,
    context: dict[str, Any],
    locale: str = "en",
    sealed: str | None = None,
) -> OutboxBase:
    """`sealed`: more context, sealed with services.common.sealing (links that grant
    access): the row, the queued job and a dead letter carry only the sealed form, and
    the relay drops it from the row once the job is queued."""
    payload = {"template": template, "to": to, "locale": locale, "context": context}
    if sealed is not None:
        payload["sealed"] = sealed
    return add_message(session, model, "email", template, payload)


Publisher = Callable[[OutboxBase], Awaitable[None]]


async def relay_batch(
    factory: async_sessionmaker[AsyncSession],
    model: type[OutboxBase],
    publish: Publisher,
    *,
    service: str,
    batch_size: int = 100,
) -> int:
    """Hand one batch of unpublished rows to `publish`; returns how many were handed over."""
    table: Any = model
    async with transaction(factory) as session:
        stmt = (
            select(table)
            .where(table.published_at.is_(None))
            .order_by(table.created_at, table.id)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
        rows = list((await session.exec(stmt)).scalars())  # type: ignore[call-overload]
        now = utcnow()
        for row in rows:
            await publish(row)
            row.published_at = now
            if row.kind == "email" and "sealed" in row.payload:
                # Handed over: the row (kept, and in every backup) needs the link no more.
                row.payload = {k: v for k, v in row.payload.items() if k != "sealed"}
            metrics.OUTBOX_RELAYED.labels(service, row.kind).inc()
    return len(rows)


async def backlog(factory: async_sessionmaker[AsyncSession], model: type[OutboxBase]) -> int:
    table: Any = model
    async with factory() as session:
        stmt = select(func.count()).select_from(table).where(table.published_at.is_(None))
        return int((await session.exec(stmt)).scalar_one())  # type: ignore[call-overload]


async def run_relay(
    factory: async_sessionmaker[AsyncSession],
    model: type[OutboxBase],
    publish: Publisher,
    *,
    service: str,
    interval: float = 0.2,
    idle_max: float = 2.0,
) -> None:
    """Relay forever (a lifespan background task); errors back off and never stop it.

    Idle polls back off from `interval` to `idle_max`; a commit with outbox rows in this
    process (wake_relays) makes it poll at once and starts the back-off again.
    """
    wake = asyncio.Event()
    with _relays_lock:
        _relays[wake] = asyncio.get_running_loop()
    delay = idle = interval
    try:
        while True:
            failed = False
            try:
                handed = await relay_batch(factory, model, publish, service=service)
                metrics.OUTBOX_BACKLOG.labels(service).set(await backlog(factory, model))
                if handed:
                    delay, idle = 0, interval
                else:
                    delay, idle = idle, min(idle * 2, idle_max)
                raise_if_cancel_requested()  # see services.common.cancel
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox relay failed, retrying: %s", type(exc).__name__)
                delay = min(max(delay * 2, interval), 5.0)
                failed = True
            if failed or not delay:
                await pause(delay)
            elif await _woken(wake, delay):
                idle = interval
    finally:
        with _relays_lock:
            _relays.pop(wake, None)


async def _woken(wake: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds` or until `wake` is set; True if it was set."""
    try:
        async with asyncio.timeout(seconds):
            await wake.wait()
    except TimeoutError:
        return False
    wake.clear()
    return True
