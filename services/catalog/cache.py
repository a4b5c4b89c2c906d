"""The catalog's Redis caches: one product by id, and pages of product lists.

An entry is `meta + b"\\n" + body`: `body` is the exact JSON the endpoint returns, so
a hit is one Redis GET and a slice, with no model round trip; `meta` carries the ETag
(and for lists the cursors needed for the Link header), tab separated.
"""

from __future__ import annotations

import hashlib
import uuid

import redis.asyncio as aioredis

from services.common.cache import Cache, Loader
from services.common.leanredis import LeanRedis
from services.common.redis import RedisGuard

LISTS_NAMESPACE = "products"
FAST_CLIENT_NAME = "catalog-cache-reads"


def pack(meta: list[str], body: bytes) -> bytes:
    return "\t".join(meta).encode("ascii") + b"\n" + body


def unpack(entry: bytes) -> tuple[list[str], bytes]:
    meta, _, body = entry.partition(b"\n")
    return meta.decode("ascii").split("\t"), body


def version_etag(version: int) -> str:
    """Strong ETag of a product or category: its row version (what If-Match compares)."""
    return f'"v{version}"'


def body_etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


class CatalogCache:
    """Both caches share one circuit breaker, so an outage is noticed once per worker."""

    def __init__(self, redis: aioredis.Redis, *, product_ttl: int, list_ttl: int) -> None:
        guard = RedisGuard()
        # One lean connection per process for the cache reads of every cached request.
        self.fast = LeanRedis.for_client(redis, client_name=FAST_CLIENT_NAME)
        self.products = Cache(redis, "products", ttl=product_ttl, guard=guard, fast=self.fast)
        self.lists = Cache(redis, "product_lists", ttl=list_ttl, guard=guard, fast=self.fast)

    async def close(self) -> None:
        if self.fast is not None:
            await self.fast.close()

    def product_key(self, product_id: uuid.UUID, *, admin: bool) -> str:
        # Admins may read drafts; everyone else only active products: two entries.
        return self.products.key("admin" if admin else "public", product_id)

    def public_key(self, product_id: str) -> str:
        """product_key(..., admin=False) for an id already in canonical form."""
        return self.products.key("public", product_id)

    def list_key(self, page_id: str) -> str:
        """The key of one list page (query fingerprint, limit, cursor). Pages are not keyed by
        the namespace version: each entry carries it, and get_list reads both in one MGET."""
        return self.lists.key(hashlib.sha256(page_id.encode()).hexdigest()[:32])

    async def peek_list(self, page_id: str) -> bytes | None:
        """The cached page if it is current, without loading (services/catalog/hotread.py)."""
        return (await self.lists.get_versioned(LISTS_NAMESPACE, self.list_key(page_id)))[1]

    async def get_list(self, page_id: str, loader: Loader) -> bytes | None:
        return await self.lists.get_or_load_versioned(
            LISTS_NAMESPACE, self.list_key(page_id), loader
        )

    async def invalidate_product(self, product_id: uuid.UUID) -> None:
        await self.products.delete(
            self.product_key(product_id, admin=True), self.product_key(product_id, admin=False)
        )
        await self.invalidate_lists()

    async def invalidate_lists(self) -> None:
        # Bumping the namespace orphans every cached page at once; TTLs reclaim them.
        await self.lists.bump(LISTS_NAMESPACE)
