"""The fast reads (services/catalog/products/fast_reads.py, CATALOG_FAST_READS): with the
switch on and off the catalog answers byte for byte alike (hit, miss, 404, 304); the
cached-read layer answers only anonymous cache hits and hands every other case to the
route; the direct row read gives the session's bytes and falls back to the session
when its pool cannot connect."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from services.catalog.deps import started_reads
from services.catalog.models import PRODUCTS
from services.catalog.products.fast_reads import (
    CachedPublicReads,
    DirectRows,
    canonical_id,
    list_page_id,
)
from services.catalog.products.queries import PUBLIC, get_product
from services.catalog.products.reads import (
    LISTS_NAMESPACE,
    SCHEMA_VERSION,
    ProductReads,
    SessionRows,
    product_answer,
)
from tests.integration.catalog.support import (
    API,
    admin_headers,
    catalog_client,
    create_category,
    create_product,
    resources,
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

    await CachedPublicReads(route, reads_of=started_reads)(scope, receive, send)
    return sent, reached


async def _session_bytes(app: Any, product_id: uuid.UUID, only_active: bool) -> bytes:
    async with app.state.session_factory() as session:
        row = await get_product(session, product_id=product_id, only_active=only_active)
    assert row is not None
    return product_answer(row).encode()


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
        reads = resources(app).reads
        assert isinstance(reads.rows, DirectRows)
        for product, admin in ((active, False), (active, True), (draft, True)):
            pid = uuid.UUID(product["id"])
            fast = await reads.load_product(pid, admin=admin)
            assert fast == await _session_bytes(app, pid, only_active=not admin)
        # Drafts stay hidden from the public on the fast path too.
        assert await reads.load_product(uuid.UUID(draft["id"]), admin=False) is None
        assert await reads.load_product(uuid.uuid4(), admin=True) is None
        # And over HTTP: the miss (asyncpg) and the hit (Redis bytes) answer alike.
        url = f"{API}/products/{active['id']}"
        miss, hit = await client.get(url), await client.get(url)
        assert miss.status_code == hit.status_code == 200
        assert miss.content == hit.content and miss.headers["etag"] == hit.headers["etag"]
        assert miss.json()["price"] == "1234567.50"


async def test_miss_path_falls_back_to_the_session_when_its_pool_cannot_connect() -> None:
    async with catalog_client() as (app, client):
        product = await create_product(client)
        reads = resources(app).reads
        # A reader whose server does not exist: every read must give way to the session.
        dead = DirectRows(
            app.state.engine,
            SessionRows(app.state.session_factory),
            size=1,
            acquire_timeout=1.0,
            statement_cache_size=0,
            application_name="test",
        )
        dead.connect.update(host="127.0.0.1", port=1, timeout=1)
        reads.rows = dead
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
            assert list_page_id(query) is None, query
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
    assert list_page_id(b"") == PUBLIC.page_id("newest", 20, None)
    assert list_page_id(b"sort=name&limit=100&cursor=a.b") == PUBLIC.page_id("name", 100, "a.b")


# ---- the switch: on and off answer alike ------------------------------------------------

SKIP_HEADERS = {"x-request-id"}


def _seen(response: Any) -> tuple[int, bytes, dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k not in SKIP_HEADERS}
    body = response.content
    if response.status_code == 404:  # a problem names its request: every request's own
        body = body.replace(response.headers["x-request-id"].encode(), b"<id>")
    return response.status_code, body, headers


async def _forget(app: Any, product_ids: list[str]) -> None:
    """Drop the cached answers, so the next read is a miss."""
    reads = resources(app).reads
    keys = [reads.product_key(p, admin=a) for p in product_ids for a in (False, True)]
    await app.state.redis.delete(*keys)
    await reads.lists.bump(LISTS_NAMESPACE)


async def _story(app: Any, client: Any, urls: list[str], ids: list[str]) -> list[Any]:
    """Miss, hit and revalidation of each url, as a client sees them."""
    seen = []
    await _forget(app, ids)
    for url in urls:
        miss = await client.get(url)
        hit = await client.get(url)
        seen += [_seen(miss), _seen(hit)]
        if "etag" in miss.headers:
            revalidated = await client.get(url, headers={"If-None-Match": miss.headers["etag"]})
            assert revalidated.status_code == 304
            seen.append(_seen(revalidated))
    return seen


async def test_switch_on_and_off_answer_byte_for_byte_alike() -> None:
    async with (
        catalog_client(fast_reads=True) as (fast_app, fast),
        catalog_client(fast_reads=False) as (plain_app, plain),
    ):
        assert isinstance(resources(fast_app).reads.rows, DirectRows)
        assert isinstance(resources(plain_app).reads.rows, SessionRows)
        assert not any(m.cls is CachedPublicReads for m in plain_app.user_middleware)
        active = await create_product(fast, price="10.50", description='"quoted"\nÜ')
        draft = await create_product(fast, status="draft")
        await create_product(fast)
        ids = [active["id"], draft["id"]]
        first = await fast.get(f"{API}/products", params={"limit": 1})
        cursor = first.json()["next_cursor"]
        urls = [
            f"{API}/products/{active['id']}",
            f"{API}/products/{draft['id']}",  # a draft: 404 for the public
            f"{API}/products/{uuid.uuid4()}",  # never existed: 404
            f"{API}/products?limit=1",
            f"{API}/products?limit=1&cursor={cursor}",
            f"{API}/products?limit=2&sort=price_asc",
        ]
        on = await _story(fast_app, fast, urls, ids)
        off = await _story(plain_app, plain, urls, ids)
        assert [s[0] for s in on] == [s[0] for s in off]
        assert 404 in [s[0] for s in on] and 304 in [s[0] for s in on]
        for url_index, (a, b) in enumerate(zip(on, off, strict=True)):
            assert a == b, url_index
        # The fast layer really answered the hits of the switched-on app.
        product = f"{API}/products/{active['id']}"
        sent, reached = await _call(_scope(fast_app, product))
        assert reached == [] and sent[0]["status"] == 200


async def test_a_new_schema_version_misses_old_entries() -> None:
    async with catalog_client() as (app, client):
        product = await create_product(client)
        url = f"{API}/products/{product['id']}"
        assert (await client.get(url)).json()["name"] == product["name"]
        assert (await client.get(f"{API}/products")).status_code == 200
        async with app.state.session_factory() as session:
            connection = await session.connection()
            await connection.execute(
                PRODUCTS.update()
                .where(PRODUCTS.c.id == uuid.UUID(product["id"]))
                .values(name="Renamed behind the cache")
            )
            await session.commit()
        assert (await client.get(url)).json()["name"] == product["name"]  # the old entry
        listed = (await client.get(f"{API}/products")).json()["items"]
        assert product["name"] in [i["name"] for i in listed]
        reads = resources(app).reads
        old_key = reads.product_key(product["id"], admin=False)
        resources(app).reads = ProductReads(
            app.state.redis,
            reads.rows,
            product_ttl=60,
            list_ttl=60,
            schema_version=SCHEMA_VERSION + 1,
        )
        new_key = resources(app).reads.product_key(product["id"], admin=False)
        assert new_key != old_key
        assert (await client.get(url)).json()["name"] == "Renamed behind the cache"
        listed = (await client.get(f"{API}/products")).json()["items"]
        assert "Renamed behind the cache" in [i["name"] for i in listed]
        await resources(app).reads.close()
        resources(app).reads = reads


# ---- the cached-read layer alone ---------------------------------------------------------


async def test_hit_is_answered_without_the_route_and_counted() -> None:
    async with catalog_client() as (app, client):
        product = await create_product(client)
        path = f"{API}/products/{product['id']}"
        assert (await client.get(path)).status_code == 200
        scope = _scope(app, path)
        sent, reached = await _call(scope)
        assert reached == [] and sent[0]["status"] == 200
        assert dict(sent[0]["headers"])[b"etag"] == b'"v1"'
        # the access log and metrics name the route template, never the raw path
        assert scope["route"].path == f"{API}/products/{{product_id}}"
        etag = dict(sent[0]["headers"])[b"etag"].decode()
        for tags in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            revalidated = await client.get(path, headers={"If-None-Match": tags})
            assert revalidated.status_code == 304 and revalidated.headers["etag"] == etag
        assert (await client.get(path, headers={"If-None-Match": '"v999"'})).status_code == 200


async def test_everything_else_goes_to_the_route() -> None:
    async with catalog_client() as (app, client):
        product = await create_product(client)
        pid = product["id"]
        path = f"{API}/products/{pid}"
        await client.get(path)  # cached now
        cases = [
            _scope(app, path, headers=[(b"authorization", b"Bearer x")]),  # drafts for admins
            _scope(app, f"{API}/products/{pid.upper()}"),  # not the canonical form
            _scope(app, f"{API}/products/{'0' * 8}-0000-0000-0000-{'0' * 12}"),  # not cached
            {**_scope(app, path), "method": "HEAD"},
            {**_scope(app, path), "query_string": b"x=1"},
        ]
        for scope in cases:
            sent, reached = await _call(scope)
            assert sent == [] and reached == [scope], scope
        # the same ids the route serves, in any spelling FastAPI accepts
        assert (await client.get(f"{API}/products/{pid.upper()}")).json()["id"] == pid
        unknown = await client.get(f"{API}/products/{'0' * 8}-0000-0000-0000-{'0' * 12}")
        assert unknown.status_code == 404


async def test_redis_down_falls_through_to_the_route() -> None:
    async with catalog_client() as (app, client):
        product = await create_product(client)
        path = f"{API}/products/{product['id']}"
        await client.get(path)
        resources(app).reads.products.guard.failed(ConnectionError("down"))
        sent, reached = await _call(_scope(app, path))
        assert sent == [] and len(reached) == 1
        assert (await client.get(path)).json()["id"] == product["id"]  # from PostgreSQL


def test_path_parsing() -> None:
    canonical = "6f1c2b3a-1d2e-4f50-8a9b-0c1d2e3f4a5b"
    assert canonical_id(f"{API}/products/{canonical}") == canonical
    for bad in (canonical.upper(), canonical.replace("-", "") + "0000", "x" * 36):
        assert canonical_id(f"{API}/products/{bad}") is None
    assert canonical_id(f"{API}/products/{canonical}/stock") is None
