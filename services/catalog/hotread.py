"""The hottest request of the shop, served without FastAPI: an anonymous
`GET /api/v1/catalog/products/{id}` whose answer is in the cache.

Profiled under load (docs/performance.md), a cached read spent ~30 % of its CPU in
FastAPI's routing, dependency solving and exception layers around a handler that only
does one Redis GET and returns the cached bytes. This pure-ASGI middleware sits inside
ObservabilityMiddleware (request id, access log and metrics still apply, under the same
route template) and answers a cache hit itself. Everything else - a miss, a cached
"not found", a token (admins may read drafts), a non-canonical id, Redis down - goes on
to the FastAPI route, which stays the single source of truth for those cases.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from services.catalog.state import CatalogState
from services.common import metrics
from services.common.cache import MISSING

PREFIX = "/api/v1/catalog/products/"
TEMPLATE = PREFIX + "{product_id}"
_CANONICAL_LEN = 36  # str(uuid.UUID(...)): what the cache keys are built from
_JSON = (b"content-type", b"application/json")


@dataclass(frozen=True, slots=True)
class RouteLabel:
    """What ObservabilityMiddleware reads as the route template (`scope["route"].path`)."""

    path: str


_LABEL = RouteLabel(TEMPLATE)


def _canonical_id(path: str) -> str | None:
    """The product id when the path is exactly PREFIX + a canonical lowercase UUID."""
    if not path.startswith(PREFIX) or len(path) != len(PREFIX) + _CANONICAL_LEN:
        return None
    raw = path[len(PREFIX) :]
    try:
        return raw if str(uuid.UUID(raw)) == raw else None
    except ValueError:
        return None


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


def _matches(if_none_match: bytes, etag: bytes) -> bool:
    """If-None-Match, weak comparison (RFC 9110 13.1.2), as services.catalog.http does."""
    for tag in if_none_match.split(b","):
        tag = tag.strip()
        if tag == b"*" or tag.removeprefix(b"W/") == etag:
            return True
    return False


class HotProductRead:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope["query_string"]:
            product_id = _canonical_id(scope["path"])
            if product_id is not None and _header(scope, b"authorization") is None:
                state: CatalogState | None = getattr(scope["app"].state, "catalog", None)
                if state is not None and await self._answer(state, product_id, scope, send):
                    return
        await self.app(scope, receive, send)

    async def _answer(self, state: CatalogState, product_id: str, scope: Scope, send: Send) -> bool:
        cache = state.cache.products
        if not cache.guard.available:
            return False
        entry = await cache.get(state.cache.public_key(product_id))
        if entry is None or entry == MISSING:
            return False  # the route loads, stores, or answers the 404
        metrics.CACHE_REQUESTS.labels(cache.name, "hit").inc()
        scope["route"] = _LABEL
        etag, _, body = entry.partition(b"\n")
        inm = _header(scope, b"if-none-match")
        if inm is not None and _matches(inm, etag):
            headers = [(b"etag", etag)]
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return True
        headers = [(b"content-length", str(len(body)).encode()), _JSON, (b"etag", etag)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return True
