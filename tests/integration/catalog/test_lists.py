"""Product lists: every sort and filter walked with cursors, backwards too, under concurrent
writes; tampered or foreign cursors and injection attempts are 4xx or harmless."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import delete

from tests.integration.catalog.lists_support import P, expected, insert_rows, rows, walk
from tests.integration.catalog.support import (
    API,
    admin_headers,
    catalog_client,
    create_category,
    is_problem,
    user_headers,
)

pytestmark = pytest.mark.usefixtures("infra")
SORTS = ["newest", "oldest", "price_asc", "price_desc", "name"]


async def test_every_sort_walks_all_active_rows_once_in_order() -> None:
    async with catalog_client() as (app, client):
        category = await create_category(client)
        values = rows(category["id"], 47)
        await insert_rows(app, values)
        active = [r for r in values if r["status"] == "active"]
        for sort in SORTS:
            items, responses = await walk(
                client, {"category": category["id"], "sort": sort, "limit": 6}
            )
            ids = [i["id"] for i in items]
            assert ids == expected(active, sort), sort
            assert len(set(ids)) == len(ids)
            assert 'rel="next"' in responses[0].headers["link"]
            assert (
                "link" not in responses[-1].headers
                or 'rel="next"' not in responses[-1].headers["link"]
            )
            assert all(isinstance(i["price"], str) for i in items)


async def test_prev_cursor_walks_back_to_the_first_page() -> None:
    async with catalog_client() as (app, client):
        category = await create_category(client)
        values = rows(category["id"], 23, status="active")
        await insert_rows(app, values)
        for sort in ("price_desc", "name"):
            params = {"category": category["id"], "sort": sort, "limit": 5}
            _, responses = await walk(client, params)
            forward_pages = [[i["id"] for i in r.json()["items"]] for r in responses]
            assert responses[0].json()["prev_cursor"] is None
            back = []
            cursor = responses[-1].json()["prev_cursor"]
            while cursor:
                page = (
                    await client.get(f"{API}/products", params={**params, "cursor": cursor})
                ).json()
                back.append([i["id"] for i in page["items"]])
                cursor = page["prev_cursor"]
            assert back == list(reversed(forward_pages[:-1])), sort


async def test_filters_price_stock_status_and_subcategories() -> None:
    async with catalog_client() as (app, client):
        root = await create_category(client)
        child = await create_category(client, parent_id=root["id"])
        grandchild = await create_category(client, parent_id=child["id"])
        other = await create_category(client)
        values = rows(root["id"], 10) + rows(child["id"], 10) + rows(grandchild["id"], 10)
        await insert_rows(app, values + rows(other["id"], 5))
        active = [r for r in values if r["status"] == "active"]

        def ids(items):  # type: ignore[no-untyped-def]
            return sorted(i["id"] for i in items)

        items, _ = await walk(client, {"category": root["id"], "limit": 7})
        assert ids(items) == sorted(str(r["id"]) for r in active)
        items, _ = await walk(client, {"category": child["id"]})
        assert ids(items) == sorted(
            str(r["id"]) for r in active if r["category_id"] != uuid.UUID(root["id"])
        )
        items, _ = await walk(
            client, {"category": root["id"], "min_price": "2.50", "max_price": "9.99", "limit": 4}
        )
        assert ids(items) == sorted(
            str(r["id"]) for r in active if Decimal("2.50") <= r["price"] <= Decimal("9.99")
        )
        items, _ = await walk(client, {"category": root["id"], "in_stock": "true"})
        assert ids(items) == sorted(str(r["id"]) for r in active if r["stock"] > 0)
        items, _ = await walk(client, {"category": root["id"], "in_stock": "false"})
        assert ids(items) == sorted(str(r["id"]) for r in active if r["stock"] == 0)
        # status: admins only; non-admins always get active rows
        items, _ = await walk(client, {"category": root["id"], "status": "draft"}, admin_headers())
        assert ids(items) == sorted(str(r["id"]) for r in values if r["status"] == "draft")
        items, _ = await walk(client, {"category": root["id"]}, admin_headers())
        assert len(items) == len(values)
        for headers in ({}, user_headers()):
            denied = await client.get(
                f"{API}/products", params={"status": "draft"}, headers=headers
            )
            assert is_problem(denied, 403)
        bad_range = await client.get(f"{API}/products", params={"min_price": "5", "max_price": "1"})
        assert is_problem(bad_range, 422)
        unknown = await client.get(f"{API}/products", params={"category": str(uuid.uuid4())})
        assert unknown.status_code == 200 and unknown.json()["items"] == []


async def test_full_text_search_uses_websearch_syntax() -> None:
    async with catalog_client() as (app, client):
        category = await create_category(client)
        word = "zq" + uuid.uuid4().hex[:8]
        values = rows(category["id"], 6, status="active")
        values[0]["name"] = f"{word} kettles"
        values[1]["description"] = f"a steel {word} for tea"
        values[2]["name"] = f"{word} teapot"
        await insert_rows(app, values)
        found = await client.get(f"{API}/products", params={"q": word})
        assert sorted(i["id"] for i in found.json()["items"]) == sorted(
            str(v["id"]) for v in values[:3]
        )
        stemmed = await client.get(f"{API}/products", params={"q": f"{word} kettle"})
        assert [i["id"] for i in stemmed.json()["items"]] == [str(values[0]["id"])]
        excluded = await client.get(f"{API}/products", params={"q": f'{word} -teapot -"steel"'})
        assert [i["id"] for i in excluded.json()["items"]] == [str(values[0]["id"])]
        items, _ = await walk(client, {"q": word, "sort": "price_asc", "limit": 1})
        assert len(items) == 3


async def test_cursors_are_tamper_proof_and_bound_to_sort_and_filters() -> None:
    async with catalog_client() as (app, client):
        category = await create_category(client)
        await insert_rows(app, rows(category["id"], 8, status="active"))
        params = {"category": category["id"], "sort": "price_asc", "limit": 3}
        first = (await client.get(f"{API}/products", params=params)).json()
        cursor = first["next_cursor"]
        payload, _, signature = cursor.partition(".")
        tampered = [
            payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + signature,
            payload + "." + signature[::-1],
            "garbage",
            "a.b.c",
            "." * 40,
            "%00",
        ]
        for bad in tampered:
            response = await client.get(f"{API}/products", params={**params, "cursor": bad})
            assert is_problem(response, 400), bad
        for other in ({"sort": "name"}, {"min_price": "1"}, {"category": str(uuid.uuid4())}):
            response = await client.get(
                f"{API}/products", params={**params, **other, "cursor": cursor}
            )
            assert is_problem(response, 400), other
        # an admin's cursor over all statuses is not valid for the public (active) list
        admin_page = (
            await client.get(f"{API}/products", params=params, headers=admin_headers())
        ).json()
        reused = await client.get(
            f"{API}/products", params={**params, "cursor": admin_page["next_cursor"]}
        )
        assert is_problem(reused, 400)
        category_cursor = (await client.get(f"{API}/categories", params={"limit": 1})).json()
        if category_cursor["next_cursor"]:
            crossed = await client.get(
                f"{API}/products", params={"cursor": category_cursor["next_cursor"]}
            )
            assert is_problem(crossed, 400)


async def test_injection_attempts_are_rejected_or_harmless() -> None:
    async with catalog_client() as (app, client):
        category = await create_category(client)
        await insert_rows(app, rows(category["id"], 3, status="active"))
        rejected = [
            {"sort": "price_asc; DROP TABLE catalog.products"},
            {"sort": "id desc"},
            {"min_price": "1 OR 1=1"},
            {"category": "x' OR '1'='1"},
            {"limit": "0"},
            {"limit": "1000"},
            {"in_stock": "yes please"},
            {"status": "active' --"},
            {"unknown": "1"},
            {"offset": "10"},
        ]
        for params in rejected:
            response = await client.get(f"{API}/products", params=params)
            assert is_problem(response, 422), params
        harmless = [
            "'; DROP TABLE catalog.products; --",
            "a & | ! (",
            "\\",
            '"unclosed',
            "-",
            "OR 1=1",
            "<script>",
            "%",
            "::tsvector",
        ]
        for q in harmless:
            response = await client.get(f"{API}/products", params={"q": q})
            assert response.status_code == 200, (q, response.text)
        still = await client.get(f"{API}/products", params={"category": category["id"]})
        assert len(still.json()["items"]) == 3


async def test_walk_survives_concurrent_inserts_and_deletes() -> None:
    async with catalog_client() as (app, client):
        category = await create_category(client)
        values = rows(category["id"], 30, status="active")
        await insert_rows(app, values)
        deleted: set[str] = set()
        inserted: set[str] = set()

        async def churn() -> None:
            extra = rows(category["id"], 2, status="active")
            await insert_rows(app, extra)
            inserted.update(str(r["id"]) for r in extra)
            victim = next(r for r in values if str(r["id"]) not in deleted)
            async with app.state.session_factory() as session:
                connection = await session.connection()
                await connection.execute(delete(P).where(P.c.id == victim["id"]))
                await session.commit()
            deleted.add(str(victim["id"]))

        for sort in ("newest", "price_desc"):
            items, _ = await walk(
                client, {"category": category["id"], "sort": sort, "limit": 4}, between=churn
            )
            ids = [i["id"] for i in items]
            assert len(ids) == len(set(ids)), "a row was served twice"
            stable = {str(r["id"]) for r in values} - deleted
            assert stable <= set(ids), "a row present throughout the walk was skipped"
            assert set(ids) <= {str(r["id"]) for r in values} | inserted
            returned = [i for i in items]
            key = (
                (lambda i: (i["created_at"], i["id"]))
                if sort == "newest"
                else (lambda i: (Decimal(i["price"]), i["id"]))
            )
            assert returned == sorted(returned, key=key, reverse=True)
