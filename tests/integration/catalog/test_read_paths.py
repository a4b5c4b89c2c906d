"""The cheap read paths (docs/performance.md, "Catalog reads"): the asyncpg miss path gives
the same bytes as the session, falls back to the session when its pool cannot connect,
and the list fast path answers cached pages exactly as the route does."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from services.catalog import service
from services.catalog.api import _load_product
from services.catalog.hotread import HotProductRead, _list_page_id
from services.catalog.listing import PUBLIC
from services.catalog.pkread import ProductReader
from tests.integration.catalog.support import (
    API,
    admin_headers,
    catalog_client,
    create_category,
    create_product,
    user_headers,
)

pytestmark = pytest.mark.usefixtures("infra")


def _scope(app: Any, path: str, query: bytes = b"", headers: Any = None) -> Any:
    return {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "server": ("test", 80),
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": headers or [],
        "app": app,
    }


async def _call(scope: Any) -> tuple[list[Any], list[Any]]:
    reached: list[Any] = []
    sent: list[Any] = []

    async def route(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope)

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        sent.append(message)

    await HotProductRead(route)(scope, receive, send)
    return sent, reached


async def _session_bytes(app: Any, product_id: uuid.UUID, only_active: bool) -> bytes:
    from services.catalog.cache import pack, version_etag
    from services.catalog.serialize import product_json

    async with app.state.session_factory() as session:
        row = await service.get_product(session, product_id=product_id, only_active=only_active)
    assert row is not None
    return pack([version_etag(row.version)], product_json(row))


async def test_miss_path_gives_the_session_bytes() -> None:
    async with catalog_client() as (app, client):
        category = await create_category(client)
        active = await create_product(
            client,
            category_id=category["id"],
            price="1234567.5",
            image_urls=["https://img.example.com/a.jpg", "https://img.example.com/b.jpg"],
            description='Ünïcode "quoted" and\nnew line',
        )
        draft = await create_product(client, status="draft")
        state = app.state.catalog
        for product, admin in ((active, False), (active, True), (draft, True)):
            pid = uuid.UUID(product["id"])
            fast = await _load_product(state, pid, admin)
            assert fast == await _session_bytes(app, pid, only_active=not admin)
        # Drafts stay hidden from the public on the fast path too.
        assert await _load_product(state, uuid.UUID(draft["id"]), False) is None
        assert await _load_product(state, uuid.uuid4(), True) is None
        # And over HTTP: the miss (asyncpg) and the hit (Redis bytes) answer alike.
        url = f"{API}/products/{active['id']}"
        miss, hit = await client.get(url), await client.get(url)
        assert miss.status_code == hit.status_code == 200
        assert miss.content == hit.content and miss.headers["etag"] == hit.headers["etag"]
        assert miss.json()["price"] == "1234567.50"


async def test_miss_path_falls_back_to_the_session_when_its_pool_cannot_connect() -> None:
    async with catalog_client() as (app, client):
        product = await create_product(client)
        state = app.state.catalog
        await state.reader.close()
        # A reader whose server does not exist: every read must give way to the session.
        dead = ProductReader(
            app.state.engine,
            size=1,
            acquire_timeout=1.0,
            statement_cache_size=0,
            application_name="test",
        )
        dead._connect.update(host="127.0.0.1", port=1, timeout=1)
        state.reader = dead
        response = await client.get(f"{API}/products/{product['id']}")
        assert response.status_code == 200 and response.json()["id"] == product["id"]
        assert (await client.get(f"{API}/products/{uuid.uuid4()}")).status_code == 404
        await dead.close()


async def test_list_fast_path_answers_like_the_route() -> None:
    async with catalog_client() as (app, client):
        for _ in range(3):
            await create_product(client)
        path = f"{API}/products"
        first = await client.get(path, params={"limit": 2})  # the route fills the cache
        assert first.status_code == 200 and "link" in first.headers
        cursor = first.json()["next_cursor"]
        second = await client.get(path, params={"limit": 2, "cursor": cursor})
        for query, routed in ((b"limit=2", first), (f"limit=2&cursor={cursor}".encode(), second)):
            scope = _scope(app, path, query)
            sent, reached = await _call(scope)
            assert reached == [] and sent[0]["status"] == 200, query
            headers = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
            assert sent[1]["body"] == routed.content
            for name in ("etag", "link", "content-type", "content-length"):
                assert headers[name] == routed.headers[name], name
            assert scope["route"].path == path  # metrics and logs name the route
            # And through the whole app, with a token (the route) or without (fast path).
            via_route = await client.get(f"{path}?{query.decode()}", headers=user_headers())
            via_fast = await client.get(f"{path}?{query.decode()}")
            assert via_route.content == via_fast.content == routed.content
            etag = routed.headers["etag"]
            not_modified = await client.get(
                f"{path}?{query.decode()}", headers={"If-None-Match": f'"x", W/{etag}'}
            )
            assert not_modified.status_code == 304
            assert not_modified.headers["etag"] == etag
            assert not_modified.headers["link"] == routed.headers["link"]
        # A write bumps the namespace: the cached page is stale, the route reloads it.
        await create_product(client)
        sent, reached = await _call(_scope(app, path, b"limit=2"))
        assert sent == [] and len(reached) == 1
        fresh = await client.get(path, params={"limit": 2})
        assert fresh.json()["items"][0]["id"] != first.json()["items"][0]["id"]


async def test_list_queries_the_fast_path_leaves_to_the_route() -> None:
    async with catalog_client() as (app, client):
        await create_product(client)
        path = f"{API}/products"
        for query in ("", "limit=20", "sort=newest", "limit=5&sort=price_asc"):
            assert (await client.get(f"{path}?{query}")).status_code == 200
        assert (await _call(_scope(app, path, b"limit=5&sort=price_asc")))[1] == []
        routed = [
            b"limit=5&sort=price_asc&min_price=1",  # a filter
            b"limit=05&sort=price_asc",  # not canonical
            b"limit=5&limit=5&sort=price_asc",  # repeated
            b"limit=5&sort=price%5Fasc",  # percent-encoded
            b"limit=0",
            b"limit=101",
            b"sort=cheapest",
            b"status=active",
            b"cursor=",
            b"cursor=not*a*cursor",
        ]
        for query in routed:
            assert _list_page_id(query) is None, query
            sent, reached = await _call(_scope(app, path, query))
            assert sent == [] and len(reached) == 1, query
        token = [(b"authorization", b"Bearer x")]
        assert len((await _call(_scope(app, path, b"limit=20", token)))[1]) == 1
        # The route still answers what the fast path declines, as before.
        assert (await client.get(f"{path}?limit=101")).status_code == 422
        assert (await client.get(f"{path}?cursor=not*a*cursor")).status_code == 400
        assert (await client.get(f"{path}?status=draft")).status_code == 403
        admin = await client.get(f"{path}?status=draft", headers=admin_headers())
        assert admin.status_code == 200
    assert _list_page_id(b"") == PUBLIC.page_id("newest", 20, None)
    assert _list_page_id(b"sort=name&limit=100&cursor=a.b") == PUBLIC.page_id("name", 100, "a.b")
