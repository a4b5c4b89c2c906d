"""The seed command loads a realistic catalog; the relay publishes product events."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import text

from tests.integration.catalog.support import API, catalog_client, create_product
from tests.support.infra import Infra
from tools.devstack import seed

pytestmark = pytest.mark.usefixtures("infra")


async def test_seed_loads_n_products_idempotently(infra: Infra) -> None:
    await seed.seed(infra.database_url, 500)
    await seed.seed(infra.database_url, 500)  # again: nothing new
    async with catalog_client() as (app, client):
        async with app.state.session_factory() as session:
            connection = await session.connection()
            counts = (
                await connection.execute(
                    text(
                        "SELECT count(*), count(DISTINCT category_id), count(DISTINCT status),"
                        " min(price) > 0, bool_and(stock >= 0) FROM catalog.products"
                        " WHERE sku LIKE 'SEED-%'"
                    )
                )
            ).one()
            categories = (
                await connection.execute(
                    text(
                        "SELECT count(*), count(*) FILTER (WHERE parent_id IS NULL)"
                        " FROM catalog.categories WHERE slug LIKE 'seed-%'"
                    )
                )
            ).one()
            # Vacuumed and analysed by the seed, so autovacuum has nothing left for later.
            maintained = (
                await connection.execute(
                    text(
                        "SELECT last_vacuum IS NOT NULL, last_analyze IS NOT NULL"
                        " FROM pg_stat_user_tables"
                        " WHERE schemaname = 'catalog' AND relname = 'products'"
                    )
                )
            ).one()
        assert maintained == (True, True)
        assert counts == (500, 105, 3, True, True)
        assert categories == (105, 5)
        kitchen = (await client.get(f"{API}/categories/by-slug/seed-kitchen")).json()
        listed = await client.get(
            f"{API}/products", params={"category": kitchen["id"], "limit": 100}
        )
        assert listed.status_code == 200 and listed.json()["items"]
        assert all(i["status"] == "active" for i in listed.json()["items"])


def test_seed_cli_rejects_negative_counts() -> None:
    with pytest.raises(SystemExit):
        seed.main(["--products", "-1"])


async def test_relay_publishes_product_events_to_the_stream() -> None:
    async with catalog_client(background_tasks=True) as (app, client):
        product = await create_product(client)
        redis = app.state.redis
        for _ in range(100):
            entries = await redis.xrevrange("events:product.created", count=50)
            ids = [json.loads(fields[b"data"])["product_id"] for _, fields in entries]
            if product["id"] in ids:
                break
            await asyncio.sleep(0.05)
        assert product["id"] in ids
