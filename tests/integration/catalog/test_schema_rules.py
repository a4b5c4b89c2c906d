"""The OpenAPI says what the API enforces: a field advertises null exactly when the API
takes null for it. And If-Match is read as the list RFC 9110 defines."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.catalog.support import (
    API,
    admin_headers,
    catalog_client,
    create_category,
    create_product,
    product_body,
)

pytestmark = pytest.mark.usefixtures("infra")


def _offers_null(schema: dict[str, Any]) -> bool:
    options = schema.get("anyOf", [schema])
    return any(option.get("type") == "null" for option in options)


async def test_null_is_advertised_exactly_where_it_is_accepted() -> None:
    async with catalog_client() as (_, client):
        spec = (await client.get("/openapi.json")).json()["components"]["schemas"]
        category = await create_category(client)
        checked = 0
        for schema_name, make_url in (("ProductUpdate", "products"), ("CategoryUpdate", None)):
            for field, schema in spec[schema_name]["properties"].items():
                if make_url:
                    target = await create_product(client, category_id=category["id"])
                    url = f"{API}/products/{target['id']}"
                else:
                    target = await create_category(client, parent_id=category["id"])
                    url = f"{API}/categories/{target['id']}"
                response = await client.patch(
                    url,
                    json={field: None},
                    headers={**admin_headers(), "If-Match": f'"v{target["version"]}"'},
                )
                accepted = response.status_code == 200
                assert accepted == _offers_null(schema), (schema_name, field, response.text)
                if not accepted:
                    assert response.status_code == 422, response.text
                    assert response.json()["errors"][0]["field"].endswith(field), response.text
                checked += 1
        for schema_name, path, body in (
            ("ProductCreate", "products", product_body),
            ("CategoryCreate", "categories", lambda: {"slug": "nulls", "name": "Nulls"}),
        ):
            for field, schema in spec[schema_name]["properties"].items():
                sent = {**body(), field: None}
                response = await client.post(f"{API}/{path}", json=sent, headers=admin_headers())
                assert (response.status_code == 201) == _offers_null(schema), (field, response.text)
                if response.status_code == 201 and path == "categories":
                    await client.delete(
                        f"{API}/categories/{response.json()['id']}", headers=admin_headers()
                    )
                checked += 1
        # Only the links take null: leaving a category, becoming a root.
        assert checked >= 8 + 3 + 9 + 3
        nullable = {
            name: [f for f, s in spec[name]["properties"].items() if _offers_null(s)]
            for name in ("ProductUpdate", "CategoryUpdate", "ProductCreate", "CategoryCreate")
        }
        assert nullable == {
            "ProductUpdate": ["category_id"],
            "CategoryUpdate": ["parent_id"],
            "ProductCreate": ["category_id"],
            "CategoryCreate": ["parent_id"],
        }


async def test_if_match_with_a_list_of_tags_passes_when_one_names_the_row() -> None:
    async with catalog_client() as (_, client):
        product = await create_product(client)
        url = f"{API}/products/{product['id']}"
        first = await client.patch(
            url, json={"name": "Second"}, headers={**admin_headers(), "If-Match": '"v1"'}
        )
        assert first.status_code == 200 and first.headers["etag"] == '"v2"'
        # The row is at version 2 now: a list naming it passes, one that does not is a 412.
        stale = await client.patch(
            url, json={"name": "Third"}, headers={**admin_headers(), "If-Match": '"v1", "v3"'}
        )
        assert stale.status_code == 412
        listed = await client.patch(
            url, json={"name": "Third"}, headers={**admin_headers(), "If-Match": '"v1", "v2"'}
        )
        assert listed.status_code == 200 and listed.json()["version"] == 3
        weak = await client.patch(
            url, json={"name": "Fourth"}, headers={**admin_headers(), "If-Match": 'W/"v3"'}
        )
        assert weak.status_code == 412  # If-Match compares strongly
        category = await create_category(client)
        moved = await client.patch(
            f"{API}/categories/{category['id']}",
            json={"name": "Renamed"},
            headers={**admin_headers(), "If-Match": '"v7", "v1"'},
        )
        assert moved.status_code == 200 and moved.headers["etag"] == '"v2"'
        deleted = await client.delete(url, headers={**admin_headers(), "If-Match": '"v2", "v3"'})
        assert deleted.status_code == 204
