"""Product and category lists: sorts with unique tie-breakers, filters, keyset pages."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, literal_column, select
from sqlalchemy.engine import Row
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.catalog.models import MAX_CATEGORY_DEPTH, SEARCH, TS_CONFIG, Category, Product
from services.catalog.sql import run
from services.common.pagination import (
    CursorCodec,
    PageResult,
    SortKey,
    build_page,
    keyset_select,
    query_fingerprint,
)

P: Any = Product.__table__.c  # type: ignore[attr-defined]
C: Any = Category.__table__.c  # type: ignore[attr-defined]
# Everything but the search vector, which is only for WHERE clauses.
PRODUCT_COLUMNS = tuple(c for c in P if c.name != "search")
CATEGORY_COLUMNS = tuple(C)

# Each sort ends with id (unique); each has a composite index led by status.
PRODUCT_SORTS: dict[str, list[SortKey]] = {
    "newest": [SortKey(P.created_at, "created_at", True), SortKey(P.id, "id", True)],
    "oldest": [SortKey(P.created_at, "created_at"), SortKey(P.id, "id")],
    "price_asc": [SortKey(P.price, "price"), SortKey(P.id, "id")],
    "price_desc": [SortKey(P.price, "price", True), SortKey(P.id, "id", True)],
    "name": [SortKey(P.name, "name"), SortKey(P.id, "id")],
}
CATEGORY_SORTS: dict[str, list[SortKey]] = {
    "name": [SortKey(C.name, "name"), SortKey(C.id, "id")],
    "newest": [SortKey(C.created_at, "created_at", True), SortKey(C.id, "id", True)],
}


@dataclass(frozen=True)
class ProductFilter:
    """The effective filters of a list (status already decided by the caller's role)."""

    status: str | None = None
    category: uuid.UUID | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    in_stock: bool | None = None
    q: str | None = None

    def fingerprint(self, sort: str) -> str:
        return query_fingerprint(sort, {k: v for k, v in asdict(self).items() if v is not None})

    def page_id(self, sort: str, limit: int, cursor: str | None) -> str:
        """What a cached list page is keyed by (the route and services.catalog.hotread)."""
        return f"{self.fingerprint(sort)}:{limit}:{cursor or ''}"


# The filters of every anonymous list without filter parameters (the hottest list).
PUBLIC = ProductFilter(status="active")


def category_subtree_levels(category_id: uuid.UUID, levels: int = MAX_CATEGORY_DEPTH) -> Any:
    """(id, level) of a category (level 1) and its descendants down to `levels` levels: a
    recursive CTE over parent_id that stops there, so a cycle in the data cannot make it
    run away."""
    table: Any = Category.__table__  # type: ignore[attr-defined]
    tree = (
        select(table.c.id, literal_column("1").label("level"))
        .where(table.c.id == category_id)
        .cte("subtree", recursive=True)
    )
    child = table.alias("child")
    return tree.union_all(
        select(child.c.id, (tree.c.level + 1).label("level")).where(
            child.c.parent_id == tree.c.id, tree.c.level < levels
        )
    )


def category_subtree(category_id: uuid.UUID) -> Select[Any]:
    """Ids of a category and all its descendants (at most MAX_CATEGORY_DEPTH levels)."""
    return select(category_subtree_levels(category_id).c.id)


def product_conditions(f: ProductFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if f.status is not None:
        conditions.append(P.status == f.status)
    if f.category is not None:
        conditions.append(P.category_id.in_(category_subtree(f.category)))
    if f.min_price is not None:
        conditions.append(P.price >= f.min_price)
    if f.max_price is not None:
        conditions.append(P.price <= f.max_price)
    if f.in_stock is True:
        conditions.append(P.stock > 0)
    elif f.in_stock is False:
        conditions.append(P.stock == 0)
    if f.q is not None:
        # websearch syntax never raises on user input (unlike to_tsquery); bound parameter.
        conditions.append(SEARCH.op("@@")(func.websearch_to_tsquery(TS_CONFIG, f.q)))
    return conditions


async def page_of(
    session: AsyncSession,
    base: Select[Any],
    *,
    keys: Sequence[SortKey],
    cursor: str | None,
    limit: int,
    codec: CursorCodec,
    query_id: str,
) -> PageResult[Row[Any]]:
    state = codec.decode(cursor, query_id=query_id, key_count=len(keys)) if cursor else None
    stmt = keyset_select(base, keys, state, limit)
    rows = list((await run(session, stmt)).all())
    return build_page(rows, keys=keys, state=state, limit=limit, codec=codec, query_id=query_id)


async def list_products(
    session: AsyncSession,
    f: ProductFilter,
    *,
    sort: str,
    cursor: str | None,
    limit: int,
    codec: CursorCodec,
) -> PageResult[Row[Any]]:
    base = select(*PRODUCT_COLUMNS).where(*product_conditions(f))
    return await page_of(
        session,
        base,
        keys=PRODUCT_SORTS[sort],
        cursor=cursor,
        limit=limit,
        codec=codec,
        query_id=f.fingerprint(sort),
    )


async def list_categories(
    session: AsyncSession,
    *,
    parent: uuid.UUID | None,
    root: bool | None,
    sort: str,
    cursor: str | None,
    limit: int,
    codec: CursorCodec,
) -> PageResult[Row[Any]]:
    conditions: list[ColumnElement[bool]] = []
    if parent is not None:
        conditions.append(C.parent_id == parent)
    if root is True:
        conditions.append(C.parent_id.is_(None))
    elif root is False:
        conditions.append(C.parent_id.is_not(None))
    filters = {"parent": parent, "root": root}
    query_id = query_fingerprint(sort, {k: v for k, v in filters.items() if v is not None})
    base = select(*CATEGORY_COLUMNS).where(*conditions)
    return await page_of(
        session,
        base,
        keys=CATEGORY_SORTS[sort],
        cursor=cursor,
        limit=limit,
        codec=codec,
        query_id=query_id,
    )
