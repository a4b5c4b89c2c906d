"""The catalog's fast reads, on when CATALOG_FAST_READS is (the default); off, the routes
and SessionRows in services/catalog/products/reads.py answer everything the same way.

Two measured shortcuts (docs/performance.md, "Catalog reads" and "the cached product
read"):

- `CachedPublicReads`: an anonymous `GET /products/{id}` or unfiltered `GET /products`
  page whose answer is in the cache is answered before FastAPI's routing, dependencies
  and exception layers, which were most of a cached read's cost. It sits inside
  ObservabilityMiddleware (request id, access log and metrics still apply, under the
  route template). A miss, a cached "not found", a token (admins may read drafts), a
  non-canonical id, a list query with filters or not in canonical form, Redis down: all
  go on to the route, the source of truth. The answer itself is `reads.answer()`, the
  route's own.
- `DirectRows`: a cache miss reads the row on a small asyncpg pool of its own, one
  prepared statement and one round trip, instead of a session (pre-ping, BEGIN, SELECT,
  ROLLBACK). Any connection-level failure falls back to the session, which reconnects
  or answers the usual 503; this path never answers an error itself.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import asyncpg
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from services.catalog.models import PRODUCT_COLUMNS, PRODUCTS
from services.catalog.products.queries import PRODUCT_SORTS, PUBLIC
from services.catalog.products.reads import (
    KNOWN_MISS,
    Answer,
    CachedAnswer,
    ProductReads,
    SessionRows,
    answer,
)
from services.common import metrics
from services.common.cache import MISSING
from services.common.middleware import RouteLabel
from services.common.pagination import link_header

log = logging.getLogger("services.catalog.fast_reads")

LIST_PATH = "/api/v1/catalog/products"
PREFIX = LIST_PATH + "/"
_CANONICAL_LEN = 36  # str(uuid.UUID(...)): what the cache keys are built from
# A list query answered here: only these parameters, each once, in the form the route
# itself builds its cache key from (canonical integers, known sorts, and a cursor in the
# codec's alphabet, which needs no percent-decoding).
_DEFAULTS = {"limit": "20", "sort": "newest", "cursor": ""}
_LIMIT = re.compile(r"[1-9][0-9]?|100")
_CURSOR = re.compile(r"[A-Za-z0-9_.-]{1,2048}")


_PRODUCT_LABEL = RouteLabel(PREFIX + "{product_id}")
_LIST_LABEL = RouteLabel(LIST_PATH)


def canonical_id(path: str) -> str | None:
    """The product id when the path is exactly PREFIX + a canonical lowercase UUID."""
    if not path.startswith(PREFIX) or len(path) != len(PREFIX) + _CANONICAL_LEN:
        return None
    raw = path[len(PREFIX) :]
    try:
        return raw if str(uuid.UUID(raw)) == raw else None
    except ValueError:
        return None


def list_page_id(query_string: bytes) -> str | None:
    """The public list's cache page id for a query answered here, else None."""
    raw = query_string.decode("latin-1")
    if "%" in raw or "+" in raw:
        return None
    params = dict(_DEFAULTS)
    seen: set[str] = set()
    for name, value in parse_qsl(raw, keep_blank_values=True):
        if name not in params or name in seen:
            return None
        seen.add(name)
        params[name] = value
    limit, sort, cursor = params["limit"], params["sort"], params["cursor"]
    if not _LIMIT.fullmatch(limit) or sort not in PRODUCT_SORTS:
        return None
    if "cursor" in seen and not _CURSOR.fullmatch(cursor):
        return None
    return PUBLIC.page_id(sort, int(limit), cursor or None)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class CachedPublicReads:
    """ASGI layer: answers anonymous product and list-page reads that are cache hits."""

    def __init__(self, app: ASGIApp, reads_of: Callable[[Any], ProductReads | None]) -> None:
        self.app = app
        self.reads_of = reads_of  # the started app's reads, or None before startup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and _header(scope, b"authorization") is None
        ):
            reads = self.reads_of(scope["app"])
            if reads is not None and await self._try(reads, scope, send):
                return
        await self.app(scope, receive, send)

    async def _try(self, reads: ProductReads, scope: Scope, send: Send) -> bool:
        path = scope["path"]
        if path == LIST_PATH:
            page_id = list_page_id(scope["query_string"])
            return page_id is not None and await self._list(reads, page_id, scope, send)
        if scope["query_string"]:
            return False
        product_id = canonical_id(path)
        return product_id is not None and await self._product(reads, product_id, scope, send)

    async def _list(self, reads: ProductReads, page_id: str, scope: Scope, send: Send) -> bool:
        if not reads.lists.guard.available:
            return False
        cached = await reads.peek_list(page_id)
        if cached is None:
            return False  # the route loads and stores it (or answers a bad cursor)
        metrics.CACHE_REQUESTS.labels(reads.lists.name, "hit").inc()
        scope["route"] = _LIST_LABEL
        # The route's own helper: the same Link, built from the same query parameters.
        link = link_header(Request(scope), cached.next_cursor, cached.prev_cursor)
        await _send(send, answer(cached, _header(scope, b"if-none-match"), link))
        return True

    async def _product(
        self, reads: ProductReads, product_id: str, scope: Scope, send: Send
    ) -> bool:
        cache = reads.products
        if not cache.guard.available:
            return False
        entry = await cache.get(reads.product_key(product_id, admin=False))
        if entry is None:
            # Absent (not Redis down: then get() is None too but the guard is open).
            scope[KNOWN_MISS] = cache.guard.available
            return False  # the route loads and stores it
        if entry == MISSING:
            return False  # the route answers the 404
        metrics.CACHE_REQUESTS.labels(cache.name, "hit").inc()
        scope["route"] = _PRODUCT_LABEL
        await _send(
            send, answer(CachedAnswer.decode(entry), _header(scope, b"if-none-match"), None)
        )
        return True


async def _send(send: Send, reply: Answer) -> None:
    await send({"type": "http.response.start", "status": reply.status, "headers": reply.headers})
    await send({"type": "http.response.body", "body": reply.body})


# ---- the direct row read ------------------------------------------------------------

# Per worker, opened on demand, beside DB_POOL_SIZE: a read holds a connection for one
# round trip, so a few serve thousands of misses a second.
POOL_SIZE = 4
_BY_ID = select(*PRODUCT_COLUMNS).where(PRODUCTS.c.id == bindparam("id"))
_ACTIVE_BY_ID = _BY_ID.where(PRODUCTS.c.status == bindparam("status"))
# What makes this path give way to the session (never an answer to the client).
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
    """Release without asyncpg's reset query (one more round trip per read): these
    connections only run one SELECT outside a transaction, so there is no session state
    to undo; asyncpg still rolls back a transaction left open before calling this."""


class DirectRows:
    """Single-row reads on a small asyncpg pool next to the engine, outside a transaction."""

    def __init__(
        self,
        engine: AsyncEngine,
        fallback: SessionRows,
        *,
        size: int,
        acquire_timeout: float,
        statement_cache_size: int,
        application_name: str,
    ) -> None:
        _, connect_kwargs = engine.dialect.create_connect_args(engine.url)
        self.connect: dict[str, Any] = {
            **connect_kwargs,
            "statement_cache_size": statement_cache_size,
            "timeout": 5,
            "server_settings": {"application_name": application_name},
        }
        # Compiled once, by the engine's own dialect: asyncpg's $n parameters.
        self._by_id = str(_BY_ID.compile(dialect=engine.dialect))
        self._active_by_id = str(_ACTIVE_BY_ID.compile(dialect=engine.dialect))
        self._fallback = fallback
        self._size = size
        self._acquire_timeout = acquire_timeout
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._tracer: Any = None

    def enable_tracing(self) -> None:
        """Give each read a client span, as the SQLAlchemy instrumentation gives the
        session's queries (this pool is not an engine, so nothing else would)."""
        from opentelemetry import trace

        self._tracer = trace.get_tracer("services.catalog.fast_reads")

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    # min_size=0: no connection is held until the first miss.
                    self._pool = await asyncpg.create_pool(
                        min_size=0, max_size=self._size, reset=_keep_session, **self.connect
                    )
        return self._pool

    async def product(self, product_id: uuid.UUID, *, only_active: bool) -> Any:
        """The row (a mapping of PRODUCT_COLUMNS) or None."""
        try:
            record = await self._fetch(product_id, only_active)
        except FALLBACK_ERRORS as exc:
            log.warning("product read falls back to the session: %s", type(exc).__name__)
            return await self._fallback.product(product_id, only_active=only_active)
        return None if record is None else dict(record.items())

    async def _fetch(self, product_id: uuid.UUID, only_active: bool) -> asyncpg.Record | None:
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
