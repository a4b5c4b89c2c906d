"""Redis caching of products and list pages: hits, invalidation after every kind of write,
stampede protection, and reads that still work while Redis is down."""

from __future__ import annotations

import asyncio
import socket
import uuid
from typing import Any

import pytest
from sqlalchemy import update

from services.catalog.models import PRODUCTS as P
from services.catalog.products.reads import ProductReads
from tests.integration.catalog.support import (
    API,
    admin_headers,
    catalog_client,
    create_category,
    create_product,
    product_body,
    resources,
)
from tests.support.infra import Infra

pytestmark = pytest.mark.usefixtures("infra")


async def sneak_rename(app, product_id: str, name: str) -> None:  # type: ignore[no-untyped-def]
    """Change a row behind the API's back: only a cache miss can show it."""
    async with app.state.session_factory() as session:
        connection = await session.connection()
        await connection.execute(update(P).where(P.c.id == uuid.UUID(product_id)).values(name=name))
        await session.commit()


async def test_product_read_is_served_from_redis_bytes() -> None:
    async with catalog_client() as (app, client):
        product = await create_product(client)
        url = f"{API}/products/{product['id']}"
        first = await client.get(url)
        reads = resources(app).reads
        cached = await app.state.redis.get(reads.product_key(product["id"], admin=False))
        assert cached is not None and cached.endswith(first.content)
        await sneak_rename(app, product["id"], "Sneaky")
        assert (await client.get(url)).json()["name"] == product["name"]  # a hit


async def test_every_kind_of_write_invalidates_product_and_lists() -> None:
    async with catalog_client() as (app, client):
        category = await create_category(client)
        product = await create_product(client, category_id=category["id"], stock=3)
        url = f"{API}/products/{product['id']}"
        list_url = f"{API}/products"
        params = {"category": category["id"]}
        etag = '"v1"'

        async def warm() -> None:
            await client.get(url)
            await client.get(url, headers=admin_headers())
            await client.get(list_url, params=params)

        writes = [
            ("PATCH", url, {"name": "Patched"}),
            ("POST", f"{url}/stock", {"delta": -1}),
            ("POST", f"{url}/archive", None),
        ]
        for method, target, body in writes:
            await warm()
            await sneak_rename(app, product["id"], f"stale-{method}")
            response = await client.request(
                method, target, json=body, headers={**admin_headers(), "If-Match": etag}
            )
            assert response.status_code == 200, response.text
            etag = response.headers["etag"]
            fresh = (await client.get(url, headers=admin_headers())).json()
            assert fresh["version"] == int(etag.strip('"v'))
            # the sneaked name proves the entry was dropped (PATCH sets its own)
            assert fresh["name"] == ("Patched" if method == "PATCH" else f"stale-{method}")
            if not target.endswith("archive"):
                public = (await client.get(url)).json()
                assert public["version"] == fresh["version"] and public["name"] == fresh["name"]
                page = (await client.get(list_url, params=params)).json()["items"]
                assert page[0]["version"] == fresh["version"]
        # archived: gone from the public read and the public list at once
        assert (await client.get(url)).status_code == 404
        assert (await client.get(list_url, params=params)).json()["items"] == []
        # a create and an import show up in a cached list at once
        await client.get(list_url, params=params)
        created = await create_product(client, category_id=category["id"])
        listed = (await client.get(list_url, params=params)).json()["items"]
        assert [i["id"] for i in listed] == [created["id"]]
        imported = await client.post(
            f"{API}/products/import",
            headers=admin_headers(),
            json=[product_body(category_id=category["id"])],
        )
        assert imported.status_code == 201
        listed = (await client.get(list_url, params=params)).json()["items"]
        assert len(listed) == 2
        # delete
        await client.get(f"{API}/products/{created['id']}")
        deleted = await client.delete(f"{API}/products/{created['id']}", headers=admin_headers())
        assert deleted.status_code == 204
        assert (await client.get(f"{API}/products/{created['id']}")).status_code == 404
        assert len((await client.get(list_url, params=params)).json()["items"]) == 1


async def test_category_delete_detaches_products_and_refreshes_their_cache() -> None:
    async with catalog_client() as (_, client):
        category = await create_category(client)
        product = await create_product(client, category_id=category["id"])
        url = f"{API}/products/{product['id']}"
        assert (await client.get(url)).json()["category_id"] == category["id"]
        response = await client.delete(
            f"{API}/categories/{category['id']}", headers=admin_headers()
        )
        assert response.status_code == 204
        after = (await client.get(url)).json()
        assert after["category_id"] is None and after["version"] == 2


async def test_list_etag_and_304() -> None:
    async with catalog_client() as (_, client):
        category = await create_category(client)
        await create_product(client, category_id=category["id"])
        params = {"category": category["id"]}
        first = await client.get(f"{API}/products", params=params)
        again = await client.get(
            f"{API}/products", params=params, headers={"If-None-Match": first.headers["etag"]}
        )
        assert again.status_code == 304
        await create_product(client, category_id=category["id"])
        changed = await client.get(
            f"{API}/products", params=params, headers={"If-None-Match": first.headers["etag"]}
        )
        assert changed.status_code == 200 and len(changed.json()["items"]) == 2


async def test_concurrent_misses_load_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    original = ProductReads.load_product

    async def counting(*args: Any, **kwargs: Any) -> bytes | None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)  # a slow query: the herd arrives meanwhile
        return await original(*args, **kwargs)

    monkeypatch.setattr(ProductReads, "load_product", counting)
    async with catalog_client() as (_, client):
        product = await create_product(client)
        url = f"{API}/products/{product['id']}"
        responses = await asyncio.gather(*(client.get(url) for _ in range(30)))
        assert all(r.status_code == 200 for r in responses)
        assert calls == 1


def dead_redis_url(infra: Infra) -> str:
    """A Redis URL on the same host whose port nothing listens on."""
    from urllib.parse import urlsplit

    host = urlsplit(infra.redis_url).hostname or "127.0.0.1"
    with socket.socket() as sock:
        sock.bind((host, 0))
        port = sock.getsockname()[1]
    return f"redis://{host}:{port}/0"


async def test_reads_work_while_redis_is_down(infra: Infra) -> None:
    async with catalog_client() as (_, client):
        category = await create_category(client)
        product = await create_product(client, category_id=category["id"])
    async with catalog_client(redis_url=dead_redis_url(infra), redis_timeout=0.2) as (_, client):
        for _ in range(3):
            one = await client.get(f"{API}/products/{product['id']}")
            assert one.status_code == 200 and one.json()["id"] == product["id"]
            assert one.headers["etag"] == '"v1"'
            listed = await client.get(f"{API}/products", params={"category": category["id"]})
            assert listed.status_code == 200
            assert [i["id"] for i in listed.json()["items"]] == [product["id"]]
        assert (await client.get(f"{API}/products/{uuid.uuid4()}")).status_code == 404
        # writes need the revocation check, which fails closed
        write = await client.post(f"{API}/products", json=product_body(), headers=admin_headers())
        assert write.status_code == 503
