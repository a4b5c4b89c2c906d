"""Async SQLModel engine and the per-request session that commits on success."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common import metrics, problems
from services.common.settings import CommonSettings


def asyncpg_url(url: str) -> str:
    """Accept plain postgres:// URLs from operators and point them at asyncpg."""
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def create_engine(settings: CommonSettings, **overrides: Any) -> AsyncEngine:
    options: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout,
        "pool_pre_ping": True,
        "connect_args": {
            "statement_cache_size": settings.db_statement_cache_size,
            "timeout": 5,
            "server_settings": {
                "application_name": settings.service_name,
                # Both in milliseconds; "0" turns a limit off.
                "statement_timeout": str(round(settings.db_statement_timeout * 1000)),
                "idle_in_transaction_session_timeout": str(
                    round(settings.db_idle_in_transaction_timeout * 1000)
                ),
            },
        },
    }
    options.update(overrides)
    engine = create_async_engine(asyncpg_url(settings.database_url), **options)
    _watch_pool(engine)
    event.listen(engine.sync_engine, "before_cursor_execute", _refuse_nul)
    return engine


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def _refuse_nul(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
    """PostgreSQL text cannot hold a NUL character: whatever field or query parameter
    carried one from the client is a 422, not a driver error and a 500."""
    if _has_nul(parameters):
        raise problems.INVALID_TEXT("Text must not contain NUL characters.")


def _watch_pool(engine: AsyncEngine) -> None:
    pool = engine.sync_engine.pool

    def _sample(*_: Any) -> None:
        checked_out = getattr(pool, "checkedout", lambda: 0)()
        overflow = getattr(pool, "overflow", lambda: 0)()
        metrics.DB_POOL_IN_USE.set(checked_out)
        metrics.DB_POOL_OVERFLOW.set(max(overflow, 0))

    event.listen(engine.sync_engine, "checkout", _sample)
    event.listen(engine.sync_engine, "checkin", _sample)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


# The one transaction rule (docs/conventions.md): a request's session commits when the
# handler returns and rolls back when it raises (get_session); code outside a request
# opens `transaction(factory)`. Work that must see the committed state (cache
# invalidation, waking the outbox relay) is registered with `after_commit` and runs only
# after the commit, never after a rollback. `commit(session)` is for the rare mid-request
# commit (release the connection before slow work, make a write durable before an error).
AfterCommit = Callable[[], Awaitable[None]]
_PENDING = "after_commit.pending"
_DUE = "after_commit.due"
log = logging.getLogger("services.db")


def after_commit(session: AsyncSession, hook: AfterCommit, *, key: str | None = None) -> None:
    """Run `hook` once the current transaction commits; `key` registers it once per
    transaction however often it is asked for."""
    info = session.sync_session.info
    pending: dict[Any, AfterCommit] | None = info.get(_PENDING)
    if pending is None:
        pending = info[_PENDING] = {}
        event.listen(session.sync_session, "after_commit", _committed)
        event.listen(session.sync_session, "after_rollback", _rolled_back)
    pending.setdefault(key if key is not None else object(), hook)


def _committed(sync_session: Any) -> None:
    pending = sync_session.info.get(_PENDING)
    if pending:
        sync_session.info.setdefault(_DUE, []).extend(pending.values())
        pending.clear()


def _rolled_back(sync_session: Any) -> None:
    pending = sync_session.info.get(_PENDING)
    if pending:
        pending.clear()


async def run_after_commit(session: AsyncSession) -> None:
    """The hooks of the transactions committed so far; a failing hook is logged, since the
    write it follows is already durable."""
    due: list[AfterCommit] = session.sync_session.info.pop(_DUE, [])
    for hook in due:
        try:
            await hook()
        except Exception:
            log.exception("after-commit hook failed")


async def commit(session: AsyncSession) -> None:
    await session.commit()
    await run_after_commit(session)


@contextlib.asynccontextmanager
async def transaction(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session that commits when the block ends and rolls back if it raises."""
    async with factory() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await commit(session)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request: commit when the handler returns, roll back if it raises."""
    async with transaction(request.app.state.session_factory) as session:
        yield session


# scope="function": the commit happens before the response is sent, so a client that
# sees 2xx can rely on the write being durable.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
