"""Idempotent creates and atomic stock changes under concurrency."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import func, select

from services.catalog.models import IdempotencyKey, Product
from tests.integration.catalog.support import (
    API,
    admin_headers,
    catalog_client,
    create_product,
    is_problem,
    product_body,
)

pytestmark = pytest.mark.usefixtures("infra")


async def count_sku(app, sku: str) -> int:  # type: ignore[no-untyped-def]
    async with app.state.session_factory() as session:
        stmt = select(func.count()).select_from(Product).where(Product.sku == sku)
        return int((await session.exec(stmt)).one()[0])


async def test_same_key_replays_first_answer_and_other_body_is_422() -> None:
    async with catalog_client() as (app, client):
        headers = {**admin_headers("admin-1"), "Idempotency-Key": uuid.uuid4().hex}
        body = product_body()
        first = await client.post(f"{API}/products", json=body, headers=headers)
        assert first.status_code == 201
        retry = await client.post(f"{API}/products", json=body, headers=headers)
        assert retry.status_code == 201
        assert retry.json() == first.json()
        assert retry.headers["location"] == first.headers["location"]
        assert retry.headers["idempotent-replayed"] == "true"
        assert await count_sku(app, body["sku"]) == 1
        different = await client.post(
            f"{API}/products", json={**body, "name": "Other"}, headers=headers
        )
        assert is_problem(different, 422)
        # the key is per caller: another admin's same key is a new request
        other_admin = {**admin_headers("admin-2"), "Idempotency-Key": headers["Idempotency-Key"]}
        second = await client.post(f"{API}/products", json=product_body(), headers=other_admin)
        assert second.status_code == 201 and second.json()["id"] != first.json()["id"]
        for bad_key in ("", "x" * 256, "spaces are not allowed"):
            bad = await client.post(
                f"{API}/products",
                json=product_body(),
                headers={**admin_headers(), "Idempotency-Key": bad_key},
            )
            assert bad.status_code in (400, 422) and bad.status_code != 201, bad_key


async def test_a_replay_answers_the_first_201_even_after_the_resource_was_deleted() -> None:
    # The Idempotency-Key contract (and why tests/fuzz/schemathesis.toml turns the
    # fuzzer's ensure_resource_availability off for the creates).
    async with catalog_client() as (_, client):
        headers = {**admin_headers("admin-1"), "Idempotency-Key": uuid.uuid4().hex}
        body = {"name": "Gone", "slug": f"gone-{uuid.uuid4().hex[:8]}", "parent_id": None}
        first = await client.post(f"{API}/categories", json=body, headers=headers)
        assert first.status_code == 201
        deleted = await client.delete(first.headers["location"], headers=admin_headers("admin-1"))
        assert deleted.status_code == 204
        replay = await client.post(f"{API}/categories", json=body, headers=headers)
        assert replay.status_code == 201 and replay.json() == first.json()
        assert replay.headers["idempotent-replayed"] == "true"
        gone = await client.get(first.headers["location"])
        assert is_problem(gone, 404)


async def test_failed_create_does_not_burn_the_key() -> None:
    async with catalog_client() as (app, client):
        existing = await create_product(client)
        headers = {**admin_headers("admin-3"), "Idempotency-Key": uuid.uuid4().hex}
        clash = await client.post(
            f"{API}/products", json=product_body(sku=existing["sku"]), headers=headers
        )
        assert is_problem(clash, 409)
        async with app.state.session_factory() as session:
            stored = (
                await session.exec(
                    select(IdempotencyKey).where(IdempotencyKey.key == headers["Idempotency-Key"])
                )
            ).all()
        assert stored == []


async def test_concurrent_same_key_creates_one_row() -> None:
    async with catalog_client() as (app, client):
        headers = {**admin_headers("admin-4"), "Idempotency-Key": uuid.uuid4().hex}
        body = product_body()
        responses = await asyncio.gather(
            *(client.post(f"{API}/products", json=body, headers=headers) for _ in range(8))
        )
        assert [r.status_code for r in responses] == [201] * 8
        assert len({r.json()["id"] for r in responses}) == 1
        assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 7
        assert await count_sku(app, body["sku"]) == 1


async def test_concurrent_decrements_never_oversell() -> None:
    async with catalog_client() as (_, client):
        product = await create_product(client, stock=20)
        url = f"{API}/products/{product['id']}/stock"
        responses = await asyncio.gather(
            *(client.post(url, json={"delta": -1}, headers=admin_headers()) for _ in range(50))
        )
        codes = [r.status_code for r in responses]
        assert codes.count(200) == 20 and codes.count(409) == 30
        assert all(is_problem(r, 409) for r in responses if r.status_code != 200)
        stocks = sorted(r.json()["stock"] for r in responses if r.status_code == 200)
        assert stocks == list(range(20))  # each success saw a distinct value: no lost update
        final = (await client.get(f"{API}/products/{product['id']}")).json()
        assert final["stock"] == 0 and final["version"] == 21


async def test_mixed_concurrent_stock_changes_add_up() -> None:
    async with catalog_client() as (_, client):
        product = await create_product(client, stock=10)
        url = f"{API}/products/{product['id']}/stock"
        deltas = [5, -3, 2, -1, 4, -2] * 5
        responses = await asyncio.gather(
            *(client.post(url, json={"delta": d}, headers=admin_headers()) for d in deltas)
        )
        applied = sum(d for d, r in zip(deltas, responses, strict=True) if r.status_code == 200)
        final = (await client.get(f"{API}/products/{product['id']}")).json()
        assert final["stock"] == 10 + applied >= 0
        assert all(r.status_code == 200 for r in responses)  # never short here


async def test_stock_errors() -> None:
    async with catalog_client() as (_, client):
        product = await create_product(client, stock=1)
        url = f"{API}/products/{product['id']}/stock"
        assert is_problem(await client.post(url, json={"delta": -2}, headers=admin_headers()), 409)
        for body in ({"delta": "lots"}, {}, {"delta": 10**9}, {"delta": 1, "stock": 5}):
            assert is_problem(await client.post(url, json=body, headers=admin_headers()), 422)
        missing = await client.post(
            f"{API}/products/{uuid.uuid4()}/stock", json={"delta": 1}, headers=admin_headers()
        )
        assert is_problem(missing, 404)
        big = await create_product(client, stock=2_147_483_000)
        overflow = await client.post(
            f"{API}/products/{big['id']}/stock", json={"delta": 1_000_000}, headers=admin_headers()
        )
        assert is_problem(overflow, 409)
        assert (await client.get(f"{API}/products/{product['id']}")).json()["stock"] == 1


async def test_expired_keys_are_reusable_and_purged() -> None:
    from sqlalchemy import update

    from services.catalog.idempotency import purge_once

    table = IdempotencyKey.__table__  # type: ignore[attr-defined]
    async with catalog_client(idempotency_ttl_hours=1) as (app, client):
        key = uuid.uuid4().hex
        headers = {**admin_headers("admin-5"), "Idempotency-Key": key}
        first = await client.post(f"{API}/products", json=product_body(), headers=headers)
        assert first.status_code == 201

        async def age(hours: int) -> None:
            async with app.state.session_factory() as session:
                connection = await session.connection()
                await connection.execute(
                    update(table)
                    .where(table.c.key == key)
                    .values(created_at=func.now() - func.make_interval(0, 0, 0, 0, hours))
                )
                await session.commit()

        await age(2)
        reused = await client.post(f"{API}/products", json=product_body(), headers=headers)
        assert reused.status_code == 201 and reused.json()["id"] != first.json()["id"]
        assert "idempotent-replayed" not in reused.headers
        await age(2)
        assert await purge_once(app) >= 1
        async with app.state.session_factory() as session:
            left = (
                await session.exec(select(IdempotencyKey).where(IdempotencyKey.key == key))
            ).all()
        assert left == []
