"""Keyset pages over real PostgreSQL: complete, no duplicates, stable under inserts."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.pagination import (
    CursorCodec,
    CursorState,
    SortKey,
    build_page,
    keyset_select,
    query_fingerprint,
)
from tests.integration.common.kit_models import KitItem

codec = CursorCodec("test-secret", "kit-items")
T = KitItem.__table__.c  # type: ignore[attr-defined]
SORTS = {
    "price_asc": [SortKey(T.price, "price"), SortKey(T.id, "id")],
    "price_desc": [SortKey(T.price, "price", descending=True), SortKey(T.id, "id", True)],
    # mixed directions exercise the OR-expanded condition
    "price_desc_id_asc": [SortKey(T.price, "price", descending=True), SortKey(T.id, "id")],
}


async def seed(factory: async_sessionmaker[AsyncSession], n: int) -> None:
    async with factory() as session:
        for i in range(n):
            # Few distinct prices, so the tie-breaker matters.
            session.add(
                KitItem(name=f"item {i}", price=Decimal(random.choice(["1.00", "2.50", "9.99"])))
            )
        await session.commit()


async def fetch_page(factory, sort: str, cursor: str | None, limit: int):
    keys = SORTS[sort]
    qid = query_fingerprint(sort, {})
    state: CursorState | None = None
    if cursor:
        state = codec.decode(cursor, query_id=qid, key_count=len(keys))
    async with factory() as session:
        stmt = keyset_select(select(KitItem), keys, state, limit)
        rows = list((await session.exec(stmt)).scalars())
    return build_page(rows, keys=keys, state=state, limit=limit, codec=codec, query_id=qid)


async def walk(factory, sort: str, limit: int, between=None) -> list:
    seen = []
    cursor = None
    while True:
        page = await fetch_page(factory, sort, cursor, limit)
        seen.extend(page.items)
        if between:
            await between()
        if not page.next_cursor:
            return seen
        cursor = page.next_cursor


def expected_order(items, sort: str) -> list:
    if sort == "price_asc":
        return sorted(items, key=lambda r: (r.price, r.id))
    if sort == "price_desc":
        return sorted(items, key=lambda r: (r.price, r.id), reverse=True)
    return sorted(items, key=lambda r: (-r.price, r.id))


async def all_items(factory) -> list:
    async with factory() as session:
        return list((await session.exec(select(KitItem))).scalars())


async def test_every_sort_walks_all_rows_once(kit_factory) -> None:
    await seed(kit_factory, 137)
    everything = await all_items(kit_factory)
    for sort in SORTS:
        seen = await walk(kit_factory, sort, limit=10)
        assert [r.id for r in seen] == [r.id for r in expected_order(everything, sort)]


async def test_prev_cursor_walks_back(kit_factory) -> None:
    await seed(kit_factory, 35)
    first = await fetch_page(kit_factory, "price_asc", None, 10)
    assert first.prev_cursor is None
    second = await fetch_page(kit_factory, "price_asc", first.next_cursor, 10)
    back = await fetch_page(kit_factory, "price_asc", second.prev_cursor, 10)
    assert [r.id for r in back.items] == [r.id for r in first.items]
    assert back.next_cursor is not None


async def test_concurrent_inserts_cause_no_duplicates_or_gaps(kit_factory) -> None:
    await seed(kit_factory, 200)
    before = {r.id for r in await all_items(kit_factory)}

    async def insert_some() -> None:
        await asyncio.gather(*(seed(kit_factory, 3) for _ in range(2)))

    seen = await walk(kit_factory, "price_asc", limit=15, between=insert_some)
    ids = [r.id for r in seen]
    assert len(ids) == len(set(ids)), "a row was returned twice"
    assert before <= set(ids), "a row that existed before the walk was skipped"
