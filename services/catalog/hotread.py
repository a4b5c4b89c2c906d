"""The hottest requests of the shop, served without FastAPI: an anonymous
`GET /api/v1/catalog/products/{id}`, or an unfiltered `GET /api/v1/catalog/products`
list page, whose answer is in the cache.

Profiled under load (docs/performance.md), a cached read spent ~30 % of its CPU in
FastAPI's routing, dependency solving and exception layers around a handler that only
does one Redis GET and returns the cached bytes. This pure-ASGI middleware sits inside
ObservabilityMiddleware (request id, access log and metrics still apply, under the same
route template) and answers a cache hit itself. Everything else - a miss, a cached
"not found", a token (admins may read drafts), a non-canonical id, a list query with a
filter or anything not in its canonical form, Redis down - goes on to the FastAPI
route, which stays the single source of truth for those cases.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from services.catalog.cache import unpack
from services.catalog.listing import PRODUCT_SORTS, PUBLIC
from services.catalog.state import CatalogState
from services.common import metrics
from services.common.cache import MISSING
from services.common.pagination import link_header

LIST_PATH = "/api/v1/catalog/products"
PREFIX = LIST_PATH + "/"
TEMPLATE = PREFIX + "{product_id}"
_CANONICAL_LEN = 36  # str(uuid.UUID(...)): what the cache keys are built from
_JSON = (b"content-type", b"application/json")


@dataclass(frozen=True, slots=True)
class RouteLabel:
    """What ObservabilityMiddleware reads as the route template (`scope["route"].path`)."""

    path: str


_LABEL = RouteLabel(TEMPLATE)
_LIST_LABEL = RouteLabel(LIST_PATH)
# A list query the fast path answers: only these parameters, each once, in the form the
# route itself would produce its cache key from (canonical integers, known sorts, and a
# cursor in the codec's alphabet, which needs no percent-decoding).
_DEFAULTS = {"limit": "20", "sort": "newest", "cursor": ""}
_LIMIT = re.compile(r"[1-9][0-9]?|100")
_CURSOR = re.compile(r"[A-Za-z0-9_.-]{1,2048}")
# Scope flag for the route: the public entry was absent a moment ago, skip its first GET.
KNOWN_MISS = "catalog.known_miss"


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


def _list_page_id(query_string: bytes) -> str | None:
    """The public list's cache page id for a query the fast path may answer, else None."""
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


class HotProductRead:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and _header(scope, b"authorization") is None
        ):
            state: CatalogState | None = getattr(scope["app"].state, "catalog", None)
            if state is not None and await self._try(state, scope, send):
                return
        await self.app(scope, receive, send)

    async def _try(self, state: CatalogState, scope: Scope, send: Send) -> bool:
        path = scope["path"]
        if path == LIST_PATH:
            page_id = _list_page_id(scope["query_string"])
            return page_id is not None and await self._answer_list(state, page_id, scope, send)
        if scope["query_string"]:
            return False
        product_id = _canonical_id(path)
        return product_id is not None and await self._answer(state, product_id, scope, send)

    async def _answer_list(
        self, state: CatalogState, page_id: str, scope: Scope, send: Send
    ) -> bool:
        cache = state.cache.lists
        if not cache.guard.available:
            return False
        entry = await state.cache.peek_list(page_id)
        if entry is None:
            return False  # the route loads and stores it (or answers a bad cursor)
        metrics.CACHE_REQUESTS.labels(cache.name, "hit").inc()
        scope["route"] = _LIST_LABEL
        (etag, next_cursor, prev_cursor), body = unpack(entry)
        headers: list[tuple[bytes, bytes]] = []
        # The route's own helper: the same Link, built from the same query parameters.
        link = link_header(Request(scope), next_cursor or None, prev_cursor or None)
        if link:
            headers.append((b"link", link.encode("latin-1")))
        headers.append((b"etag", etag.encode("ascii")))
        inm = _header(scope, b"if-none-match")
        if inm is not None and _matches(inm, etag.encode("ascii")):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return True
        headers += [(b"content-length", str(len(body)).encode()), _JSON]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return True

    async def _answer(self, state: CatalogState, product_id: str, scope: Scope, send: Send) -> bool:
        cache = state.cache.products
        if not cache.guard.available:
            return False
        entry = await cache.get(state.cache.public_key(product_id))
        if entry is None:
            # Absent (not Redis down: then get() is None too but the guard is open).
            scope[KNOWN_MISS] = cache.guard.available
            return False  # the route loads and stores it
        if entry == MISSING:
            return False  # the route answers the 404
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
