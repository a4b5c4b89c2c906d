"""The cached-read fast path (services/catalog/hotread.py): it answers anonymous cache
hits exactly as the FastAPI route would, and hands every other case to the route."""

from __future__ import annotations

from typing import Any

import pytest

from services.catalog.hotread import HotProductRead, _canonical_id, _matches
from tests.integration.catalog.support import API, catalog_client, create_product, user_headers

pytestmark = pytest.mark.usefixtures("infra")
SAME_HEADERS = ("content-type", "content-length", "etag")


def _scope(app: Any, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": b"",
        "headers": headers or [],
        "app": app,
    }


async def _call(app: Any, scope: Any) -> tuple[list[Any], list[Any]]:
    """Run the middleware alone; returns (messages sent, scopes that reached the route)."""
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


async def test_fast_answer_matches_the_route() -> None:
    async with catalog_client() as (_app, client):
        product = await create_product(client)
        url = f"{API}/products/{product['id']}"
        miss = await client.get(url)  # through the route: loads and fills the cache
        hit = await client.get(url)  # answered by the fast path
        routed = await client.get(url, headers=user_headers())  # a token: always the route
        for response in (miss, hit, routed):
            assert response.status_code == 200
        assert hit.content == miss.content == routed.content
        for name in SAME_HEADERS:
            assert hit.headers[name] == routed.headers[name], name
        assert hit.headers["x-request-id"]  # still inside ObservabilityMiddleware
        etag = hit.headers["etag"]
        for tags in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            revalidated = await client.get(url, headers={"If-None-Match": tags})
            assert revalidated.status_code == 304 and revalidated.headers["etag"] == etag
        assert (await client.get(url, headers={"If-None-Match": '"v999"'})).status_code == 200


async def test_hit_is_answered_without_the_route_and_counted() -> None:
    async with catalog_client() as (app, client):
        product = await create_product(client)
        path = f"{API}/products/{product['id']}"
        assert (await client.get(path)).status_code == 200
        scope = _scope(app, path)
        sent, reached = await _call(app, scope)
        assert reached == [] and sent[0]["status"] == 200
        assert dict(sent[0]["headers"])[b"etag"] == b'"v1"'
        # the access log and metrics name the route template, never the raw path
        assert scope["route"].path == f"{API}/products/{{product_id}}"


async def test_everything_else_goes_to_the_route() -> None:
    async with catalog_client() as (app, client):
        product = await create_product(client)
        pid = product["id"]
        path = f"{API}/products/{pid}"
        await client.get(path)  # cached now
        cases = [
            _scope(app, path, [(b"authorization", b"Bearer x")]),  # admins may see drafts
            _scope(app, f"{API}/products/{pid.upper()}"),  # not the canonical form
            _scope(app, f"{API}/products/{'0' * 8}-0000-0000-0000-{'0' * 12}"),  # not cached
            {**_scope(app, path), "method": "HEAD"},
            {**_scope(app, path), "query_string": b"x=1"},
        ]
        for scope in cases:
            sent, reached = await _call(app, scope)
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
        app.state.catalog.cache.products.guard.failed(ConnectionError("down"))
        sent, reached = await _call(app, _scope(app, path))
        assert sent == [] and len(reached) == 1
        assert (await client.get(path)).json()["id"] == product["id"]  # from PostgreSQL


def test_path_and_precondition_parsing() -> None:
    canonical = "6f1c2b3a-1d2e-4f50-8a9b-0c1d2e3f4a5b"
    assert _canonical_id(f"{API}/products/{canonical}") == canonical
    for bad in (canonical.upper(), canonical.replace("-", "") + "0000", "x" * 36):
        assert _canonical_id(f"{API}/products/{bad}") is None
    assert _canonical_id(f"{API}/products/{canonical}/stock") is None
    assert _matches(b'"a", W/"v1"', b'"v1"') and _matches(b"*", b'"v1"')
    assert not _matches(b'"v10"', b'"v1"')
