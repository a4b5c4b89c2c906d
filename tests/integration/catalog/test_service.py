"""Service plumbing: health, readiness, metrics, OpenAPI, unknown routes as problem+json."""

from __future__ import annotations

import pytest

from tests.integration.catalog.support import API, catalog_client, is_problem

pytestmark = pytest.mark.usefixtures("infra")


async def test_health_ready_metrics_and_openapi() -> None:
    async with catalog_client() as (_, client):
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {
            "database": "ok",
            "redis": "ok",
        }
        await client.get(f"{API}/products")
        metrics = (await client.get("/metrics")).text
        assert "/api/v1/catalog/products" in metrics
        paths = (await client.get("/openapi.json")).json()["paths"]
        for path in (
            "/products",
            "/products/{product_id}",
            "/products/by-sku/{sku}",
            "/products/import",
            "/products/{product_id}/stock",
            "/products/{product_id}/archive",
            "/categories",
            "/categories/{category_id}",
            "/categories/by-slug/{slug}",
        ):
            assert API + path in paths, path
        schema = paths[API + "/products/{product_id}"]["get"]["responses"]["200"]
        assert schema["content"]["application/json"]["schema"]["$ref"].endswith("ProductOut")
        assert is_problem(await client.get(f"{API}/nothing-here"), 404)
        assert is_problem(await client.put(f"{API}/products"), 405)
