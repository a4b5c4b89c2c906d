"""One product by primary key, read on a plain asyncpg connection: the cache-miss path.

Through the session a miss cost six PostgreSQL round trips: the pool's pre-ping
(BEGIN, `;`, ROLLBACK: SQLAlchemy wraps it in a transaction for pgbouncer), the
session's BEGIN, the SELECT and the ROLLBACK at close, plus the ORM and Core layers
around them (docs/performance.md, "Catalog reads"). A single-row read needs no
transaction, so this small, lazily opened pool runs it as one prepared statement: one
round trip. Any connection-level failure (a restarted server, a full pool) makes the
caller fall back to the session, which pre-pings, reconnects, and turns a real outage
into the usual 503; this path never answers an error itself.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import asyncpg
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.catalog.listing import PRODUCT_COLUMNS
from services.catalog.models import Product

PRODUCT_TABLE: Any = Product.__table__  # type: ignore[attr-defined]

log = logging.getLogger("services.catalog.pkread")

# Per worker, opened on demand, beside DB_POOL_SIZE: a pk read holds a connection for one
# round trip, so a few serve thousands of misses a second.
READ_POOL_SIZE = 4
_BY_ID = select(*PRODUCT_COLUMNS).where(PRODUCT_TABLE.c.id == bindparam("id"))
_ACTIVE_BY_ID = _BY_ID.where(PRODUCT_TABLE.c.status == bindparam("status"))
# What makes the fast path give way to the session path (never an answer to the client).
FALLBACK_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    OSError,
    TimeoutError,
)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Release without asyncpg's default reset query (advisory unlocks, CLOSE ALL, UNLISTEN,
    RESET ALL: one more round trip per read). These connections only ever run one
    SELECT outside a transaction, so there is no session state to undo; asyncpg still
    rolls back a transaction left open before calling this."""


class ProductReader:
    """A small asyncpg pool next to the engine, for single-row reads outside a transaction."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        size: int,
        acquire_timeout: float,
        statement_cache_size: int,
        application_name: str,
    ) -> None:
        _, connect_kwargs = engine.dialect.create_connect_args(engine.url)
        self._connect: dict[str, Any] = {
            **connect_kwargs,
            "statement_cache_size": statement_cache_size,
            "timeout": 5,
            "server_settings": {"application_name": application_name},
        }
        # Compiled once, by the engine's own dialect: asyncpg's $n parameters.
        self._by_id = str(_BY_ID.compile(dialect=engine.dialect))
        self._active_by_id = str(_ACTIVE_BY_ID.compile(dialect=engine.dialect))
        self._size = size
        self._acquire_timeout = acquire_timeout
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._tracer: Any = None

    def enable_tracing(self) -> None:
        """Give each read a client span, as the SQLAlchemy instrumentation gives the
        session's queries (this pool is not an engine, so nothing else would)."""
        from opentelemetry import trace

        self._tracer = trace.get_tracer("services.catalog.pkread")

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    # min_size=0: no connection is held until the first miss.
                    self._pool = await asyncpg.create_pool(
                        min_size=0, max_size=self._size, reset=_keep_session, **self._connect
                    )
        return self._pool

    async def product(self, product_id: uuid.UUID, *, only_active: bool) -> asyncpg.Record | None:
        """The row (the columns of PRODUCT_COLUMNS) or None; raises FALLBACK_ERRORS."""
        pool = await self._get_pool()
        sql, args = (
            (self._active_by_id, (product_id, "active"))
            if only_active
            else (self._by_id, (product_id,))
        )
        if self._tracer is None:
            async with pool.acquire(timeout=self._acquire_timeout) as connection:
                return await connection.fetchrow(sql, *args)
        from opentelemetry.trace import SpanKind

        attributes = {"db.system": "postgresql", "db.statement": sql}
        with self._tracer.start_as_current_span(
            "SELECT catalog.products", kind=SpanKind.CLIENT, attributes=attributes
        ):
            async with pool.acquire(timeout=self._acquire_timeout) as connection:
                return await connection.fetchrow(sql, *args)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), timeout=5)
            except FALLBACK_ERRORS:
                pool.terminate()
