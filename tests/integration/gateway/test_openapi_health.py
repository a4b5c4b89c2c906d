"""The merged OpenAPI document, Swagger UI, /readyz and /metrics of the gateway."""

from __future__ import annotations

from tests.integration.gateway.conftest import PREFIXES, gateway, make_settings, routes_for
from tests.integration.gateway.upstream import Upstream, free_port
from tests.support.infra import Infra


async def test_merged_openapi_has_every_upstream(
    infra: Infra, upstreams: dict[str, Upstream]
) -> None:
    async with gateway(make_settings(infra, routes_for(upstreams))) as client:
        response = await client.get("/openapi.json")
        again = await client.get("/openapi.json")
        docs = await client.get("/docs")
    assert response.status_code == 200
    doc = response.json()
    assert again.json() == doc
    paths = doc["paths"]
    for prefix in PREFIXES.values():
        assert f"{prefix}/items/{{item_id}}" in paths
    assert "/healthz" in paths and "/readyz" in paths  # the gateway's own
    schemas = doc["components"]["schemas"]
    # Three services each define a different "Item": one keeps the name, the others
    # are prefixed, and each service's $ref follows its own.
    items = {name for name in schemas if name.endswith("Item")}
    assert len(items) == len(PREFIXES)
    for service in PREFIXES:
        op = paths[f"/api/v1/{service}/items/{{item_id}}"]["get"]
        ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        assert f"{service}_field" in schemas[ref.rsplit("/", 1)[-1]]["properties"]
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert paths["/api/v1/catalog/items/{item_id}"]["get"]["security"] == []
    assert paths["/api/v1/users/items/{item_id}"]["get"]["security"] == [{"bearerAuth": []}]
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    assert "/openapi.json" in docs.text


async def test_openapi_skips_an_upstream_that_is_down(
    infra: Infra, upstreams: dict[str, Upstream]
) -> None:
    routes = {**routes_for(upstreams), "/api/v1/users": [f"http://127.0.0.1:{free_port()}"]}
    async with gateway(make_settings(infra, routes)) as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/catalog/items/{item_id}" in paths
    assert "/api/v1/users/items/{item_id}" not in paths


async def test_readyz_reports_upstreams_and_redis(
    infra: Infra, upstreams: dict[str, Upstream]
) -> None:
    async with gateway(make_settings(infra, routes_for(upstreams))) as client:
        ready = await client.get("/readyz")
        live = await client.get("/healthz")
    assert live.status_code == 200
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "redis": "ok",
        "upstream:auth": "ok",
        "upstream:users": "ok",
        "upstream:catalog": "ok",
    }
