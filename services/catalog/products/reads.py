"""Reading products through the cache: one product by id, and pages of product lists.

A cache entry is built and parsed here only (`CachedAnswer`): the ETag, the list's
cursors for its Link header, then the exact JSON the endpoint returns, so a hit is one
Redis GET and a slice. Every key carries SCHEMA_VERSION: a deploy that changes the
answer's shape reads new keys and never serves the old JSON. `answer()` turns an entry
into the HTTP answer, for the route and for the fast reads alike, so both give the same
bytes and headers.

Rows come from a `RowSource`: the request's kind of session here (`SessionRows`), or the
direct asyncpg read in services/catalog/products/fast_reads.py when CATALOG_FAST_READS
is on.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
from fastapi import Response
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from services.catalog.products.queries import get_product
from services.catalog.products.schemas import ProductOut
from services.common.cache import Cache
from services.common.conditional import etag as version_etag
from services.common.conditional import none_match
from services.common.db import after_commit
from services.common.leanredis import LeanRedis
from services.common.redis import RedisGuard

# Bump when the cached JSON or the entry's layout changes (a field added, renamed, or
# formatted differently): keys from before the deploy are never read again.
SCHEMA_VERSION = 2
LISTS_NAMESPACE = "products"
READS_CLIENT_NAME = "catalog-cache-reads"
# Scope flag set by the fast reads: the public entry was absent a moment ago, so the
# route skips its own first GET.
KNOWN_MISS = "catalog.known_miss"
Headers = list[tuple[bytes, bytes]]
_JSON = (b"content-type", b"application/json")


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """One cached answer: `etag\\tnext\\tprev\\n` then the JSON body."""

    etag: str
    body: bytes
    next_cursor: str | None = None
    prev_cursor: str | None = None

    def encode(self) -> bytes:
        meta = "\t".join((self.etag, self.next_cursor or "", self.prev_cursor or ""))
        return meta.encode("ascii") + b"\n" + self.body

    @classmethod
    def decode(cls, entry: bytes) -> CachedAnswer:
        meta, _, body = entry.partition(b"\n")
        etag, next_cursor, prev_cursor = meta.decode("ascii").split("\t")
        return cls(etag, body, next_cursor or None, prev_cursor or None)


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer as raw ASGI parts."""

    status: int
    headers: Headers
    body: bytes

    def response(self) -> Response:
        response = Response(self.body, status_code=self.status)
        response.raw_headers = list(self.headers)
        return response


def answer(cached: CachedAnswer, if_none_match: str | None, link: str | None) -> Answer:
    """200 with the cached body, or 304 when If-None-Match names its ETag."""
    headers: Headers = [(b"link", link.encode("latin-1"))] if link else []
    headers.append((b"etag", cached.etag.encode("ascii")))
    if none_match(if_none_match, cached.etag):
        return Answer(304, headers, b"")
    headers += [(b"content-length", str(len(cached.body)).encode()), _JSON]
    return Answer(200, headers, cached.body)


def body_etag(body: bytes) -> str:
    """A list page's strong ETag: a digest of its bytes (a page has no row version)."""
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def product_answer(row: Any) -> CachedAnswer:
    out = ProductOut.model_validate(row)
    return CachedAnswer(version_etag(out.version), out.model_dump_json().encode())


class RowSource(Protocol):
    async def product(
        self, product_id: uuid.UUID, *, only_active: bool
    ) -> Mapping[str, Any] | Any | None: ...


@dataclass(frozen=True, slots=True)
class SessionRows:
    """The plain path: a session of the service's engine."""

    session_factory: async_sessionmaker[AsyncSession]

    async def product(self, product_id: uuid.UUID, *, only_active: bool) -> Any:
        async with self.session_factory() as session:
            return await get_product(session, product_id=product_id, only_active=only_active)


class ProductReads:
    """Both caches share one circuit breaker, so an outage is noticed once per worker."""

    def __init__(
        self,
        redis: aioredis.Redis,
        rows: RowSource,
        *,
        product_ttl: int,
        list_ttl: int,
        schema_version: int = SCHEMA_VERSION,
    ) -> None:
        guard = RedisGuard()
        self.rows = rows
        self.schema = f"s{schema_version}"
        # One lean connection per process for the GETs of every cached read.
        self.reads_client = LeanRedis.for_client(redis, client_name=READS_CLIENT_NAME)
        self.products = Cache(
            redis, "products", ttl=product_ttl, guard=guard, fast=self.reads_client
        )
        self.lists = Cache(
            redis, "product_lists", ttl=list_ttl, guard=guard, fast=self.reads_client
        )

    async def close(self) -> None:
        if self.reads_client is not None:
            await self.reads_client.close()

    def product_key(self, product_id: uuid.UUID | str, *, admin: bool) -> str:
        # Admins may read drafts; everyone else only active products: two entries. A
        # str id must already be canonical (what str(uuid) gives).
        return self.products.key(self.schema, "admin" if admin else "public", product_id)

    def list_key(self, page_id: str) -> str:
        """The key of one list page (query fingerprint, limit, cursor). Pages are not keyed by
        the namespace version: each entry carries it, and one MGET reads both."""
        digest = hashlib.sha256(page_id.encode()).hexdigest()[:32]
        return self.lists.key(self.schema, digest)

    async def product(
        self, product_id: uuid.UUID, *, admin: bool, known_miss: bool = False
    ) -> CachedAnswer | None:
        """The product's answer (cached, or loaded and cached); None: no such product."""
        entry = await self.products.get_or_load(
            self.product_key(product_id, admin=admin),
            lambda: self.load_product(product_id, admin=admin),
            known_miss=known_miss,
        )
        return None if entry is None else CachedAnswer.decode(entry)

    async def load_product(self, product_id: uuid.UUID, *, admin: bool) -> bytes | None:
        row = await self.rows.product(product_id, only_active=not admin)
        return None if row is None else product_answer(row).encode()

    async def list_page(
        self, page_id: str, load: Callable[[], Awaitable[CachedAnswer]]
    ) -> CachedAnswer:
        async def loader() -> bytes:
            return (await load()).encode()

        entry = await self.lists.get_or_load_versioned(
            LISTS_NAMESPACE, self.list_key(page_id), loader
        )
        assert entry is not None  # the loader never answers "not found"
        return CachedAnswer.decode(entry)

    async def peek_list(self, page_id: str) -> CachedAnswer | None:
        """The cached page if it is current, without loading (the fast reads)."""
        entry = (await self.lists.get_versioned(LISTS_NAMESPACE, self.list_key(page_id)))[1]
        return None if entry is None else CachedAnswer.decode(entry)

    def invalidate_after_commit(self, session: AsyncSession, *product_ids: uuid.UUID) -> None:
        """Drop the products' answers and every list page once the transaction commits
        (before it, a concurrent reader could cache the old row again)."""
        for product_id in product_ids:
            drop = functools.partial(self._drop, product_id)
            after_commit(session, drop, key=f"catalog.product:{product_id}")
        after_commit(session, self._drop_lists, key="catalog.lists")

    async def _drop(self, product_id: uuid.UUID) -> None:
        await self.products.delete(
            self.product_key(product_id, admin=True), self.product_key(product_id, admin=False)
        )

    async def _drop_lists(self) -> None:
        # Bumping the namespace orphans every cached page at once; TTLs reclaim them.
        await self.lists.bump(LISTS_NAMESPACE)
