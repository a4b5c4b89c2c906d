"""Seeding and walking product lists for the pagination tests."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import insert

from services.catalog.models import Product
from tests.integration.catalog.support import API

P: Any = Product.__table__  # type: ignore[attr-defined]
NAMES = ["apple", "banana", "cherry", "damson", "elder"]
PRICES = [Decimal("1.00"), Decimal("2.50"), Decimal("9.99"), Decimal("100.00")]
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


def rows(category_id: str, n: int, **fixed: Any) -> list[dict[str, Any]]:
    rng = random.Random(n)
    out = []
    for i in range(n):
        row = {
            "id": uuid.uuid4(),
            "sku": f"T-{uuid.uuid4().hex[:16]}",
            # Few distinct values per sort column, so the id tie-breaker is exercised.
            "name": rng.choice(NAMES),
            "description": f"item number {i}",
            "price": rng.choice(PRICES),
            "currency": "EUR",
            "stock": rng.choice([0, 1, 7]),
            "status": rng.choice(["active", "active", "draft"]),
            "category_id": uuid.UUID(category_id),
            "image_urls": [],
            "created_at": BASE_TIME + timedelta(minutes=rng.randrange(5)),
            "updated_at": BASE_TIME,
            "version": 1,
        }
        row.update(fixed)
        out.append(row)
    return out


async def insert_rows(app: FastAPI, values: list[dict[str, Any]]) -> None:
    async with app.state.session_factory() as session:
        connection = await session.connection()
        await connection.execute(insert(P), values)
        await session.commit()


def sort_key(sort: str):  # type: ignore[no-untyped-def]
    return {
        "newest": (lambda r: (r["created_at"], r["id"]), True),
        "oldest": (lambda r: (r["created_at"], r["id"]), False),
        "price_asc": (lambda r: (r["price"], r["id"]), False),
        "price_desc": (lambda r: (r["price"], r["id"]), True),
        "name": (lambda r: (r["name"], r["id"]), False),
    }[sort]


def expected(values: list[dict[str, Any]], sort: str) -> list[str]:
    key, reverse = sort_key(sort)
    return [str(r["id"]) for r in sorted(values, key=key, reverse=reverse)]


async def walk(
    client: httpx.AsyncClient,
    params: dict[str, Any],
    headers: dict[str, str] | None = None,
    between=None,  # type: ignore[no-untyped-def]
) -> tuple[list[dict[str, Any]], list[httpx.Response]]:
    items: list[dict[str, Any]] = []
    responses = []
    cursor = None
    for _ in range(1000):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(f"{API}/products", params=query, headers=headers or {})
        assert response.status_code == 200, response.text
        responses.append(response)
        page = response.json()
        items.extend(page["items"])
        if between is not None:
            await between()
        cursor = page["next_cursor"]
        if not cursor:
            return items, responses
    raise AssertionError("pagination never ended")
