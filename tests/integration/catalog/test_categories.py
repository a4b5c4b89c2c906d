"""Categories: CRUD, tree rules (no cycles, children block deletes), lists, authorization."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.catalog.support import (
    API,
    admin_headers,
    catalog_client,
    create_category,
    is_problem,
    user_headers,
)

pytestmark = pytest.mark.usefixtures("infra")


async def test_create_read_by_id_and_slug_and_update_with_if_match() -> None:
    async with catalog_client() as (_, client):
        root = await create_category(client, name="Kitchen")
        url = f"{API}/categories/{root['id']}"
        got = await client.get(url)
        assert got.status_code == 200 and got.json() == root and got.headers["etag"] == '"v1"'
        by_slug = await client.get(f"{API}/categories/by-slug/{root['slug']}")
        assert by_slug.json()["id"] == root["id"]
        assert (await client.get(url, headers={"If-None-Match": '"v1"'})).status_code == 304
        assert is_problem(await client.patch(url, json={"name": "X"}, headers=admin_headers()), 428)
        patched = await client.patch(
            url, json={"name": "Cooking"}, headers={**admin_headers(), "If-Match": '"v1"'}
        )
        assert patched.status_code == 200 and patched.json()["version"] == 2
        stale = await client.patch(
            url, json={"name": "Late"}, headers={**admin_headers(), "If-Match": '"v1"'}
        )
        assert is_problem(stale, 412)
        assert is_problem(await client.get(f"{API}/categories/{uuid.uuid4()}"), 404)
        assert is_problem(await client.get(f"{API}/categories/by-slug/nope-{uuid.uuid4()}"), 404)


async def test_slug_rules_and_duplicates() -> None:
    async with catalog_client() as (_, client):
        existing = await create_category(client)
        for slug in (
            "Upper",
            "with space",
            "-lead",
            "trail-",
            "a--b",
            "",
            "x" * 101,
            "'; DROP TABLE catalog.categories; --",
        ):
            response = await client.post(
                f"{API}/categories", json={"slug": slug, "name": "n"}, headers=admin_headers()
            )
            assert is_problem(response, 422), slug
        dup = await client.post(
            f"{API}/categories",
            json={"slug": existing["slug"], "name": "n"},
            headers=admin_headers(),
        )
        assert is_problem(dup, 409)
        unknown_parent = await client.post(
            f"{API}/categories",
            json={"slug": f"s-{uuid.uuid4().hex[:6]}", "name": "n", "parent_id": str(uuid.uuid4())},
            headers=admin_headers(),
        )
        assert is_problem(unknown_parent, 422)


async def test_tree_cannot_form_a_cycle_and_children_block_delete() -> None:
    async with catalog_client() as (_, client):
        root = await create_category(client)
        child = await create_category(client, parent_id=root["id"])
        grandchild = await create_category(client, parent_id=child["id"])
        for parent in (grandchild["id"], root["id"]):
            cycle = await client.patch(
                f"{API}/categories/{root['id']}",
                json={"parent_id": parent},
                headers={**admin_headers(), "If-Match": '"v1"'},
            )
            assert is_problem(cycle, 422)
        blocked = await client.delete(f"{API}/categories/{root['id']}", headers=admin_headers())
        assert is_problem(blocked, 409)
        moved = await client.patch(
            f"{API}/categories/{grandchild['id']}",
            json={"parent_id": None},
            headers={**admin_headers(), "If-Match": '"v1"'},
        )
        assert moved.status_code == 200 and moved.json()["parent_id"] is None
        for category in (child, root):
            response = await client.delete(
                f"{API}/categories/{category['id']}", headers=admin_headers()
            )
            assert response.status_code == 204
        assert is_problem(await client.get(f"{API}/categories/{root['id']}"), 404)


async def test_list_walks_children_with_cursors() -> None:
    async with catalog_client() as (_, client):
        root = await create_category(client)
        children = [
            await create_category(client, parent_id=root["id"], name=f"child {i:02d}")
            for i in range(7)
        ]
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params = {"parent": root["id"], "limit": 3, **({"cursor": cursor} if cursor else {})}
            response = await client.get(f"{API}/categories", params=params)
            assert response.status_code == 200
            page = response.json()
            seen += [c["id"] for c in page["items"]]
            pages += 1
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert seen == [c["id"] for c in children] and pages == 3
        roots = (
            await client.get(f"{API}/categories", params={"root": "true", "limit": 100})
        ).json()
        assert all(c["parent_id"] is None for c in roots["items"])
        assert is_problem(await client.get(f"{API}/categories", params={"sort": "slug;--"}), 422)


async def test_category_writes_need_admin() -> None:
    async with catalog_client() as (_, client):
        category = await create_category(client)
        url = f"{API}/categories/{category['id']}"
        for method, target, body in (
            ("POST", f"{API}/categories", {"slug": "a", "name": "a"}),
            ("PATCH", url, {"name": "b"}),
            ("DELETE", url, None),
        ):
            assert is_problem(await client.request(method, target, json=body), 401)
            user = await client.request(
                method, target, json=body, headers={**user_headers(), "If-Match": '"v1"'}
            )
            assert is_problem(user, 403)
        assert (await client.get(url)).json()["version"] == 1
