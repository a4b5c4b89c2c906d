"""Product lists: sorts with unique tie-breakers, filters, keyset pages; one product."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Row
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel.ext.asyncio.session import AsyncSession

from services.catalog.categories.queries import category_subtree
from services.catalog.models import PRODUCT_COLUMNS, PRODUCTS, SEARCH, TS_CONFIG
from services.catalog.queries import page_of, run
from services.common.pagination import CursorCodec, PageResult, SortKey, query_fingerprint

# Each sort ends with id (unique); each has a composite index led by status.
PRODUCT_SORTS: dict[str, list[SortKey]] = {
    "newest": [
        SortKey(PRODUCTS.c.created_at, "created_at", True),
        SortKey(PRODUCTS.c.id, "id", True),
    ],
    "oldest": [SortKey(PRODUCTS.c.created_at, "created_at"), SortKey(PRODUCTS.c.id, "id")],
    "price_asc": [SortKey(PRODUCTS.c.price, "price"), SortKey(PRODUCTS.c.id, "id")],
    "price_desc": [SortKey(PRODUCTS.c.price, "price", True), SortKey(PRODUCTS.c.id, "id", True)],
    "name": [SortKey(PRODUCTS.c.name, "name"), SortKey(PRODUCTS.c.id, "id")],
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
        """What a cached list page is keyed by (the route and the fast reads)."""
        return f"{self.fingerprint(sort)}:{limit}:{cursor or ''}"


# The filters of every anonymous list without filter parameters (the hottest list).
PUBLIC = ProductFilter(status="active")


def product_conditions(f: ProductFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if f.status is not None:
        conditions.append(PRODUCTS.c.status == f.status)
    if f.category is not None:
        conditions.append(PRODUCTS.c.category_id.in_(category_subtree(f.category)))
    if f.min_price is not None:
        conditions.append(PRODUCTS.c.price >= f.min_price)
    if f.max_price is not None:
        conditions.append(PRODUCTS.c.price <= f.max_price)
    if f.in_stock is True:
        conditions.append(PRODUCTS.c.stock > 0)
    elif f.in_stock is False:
        conditions.append(PRODUCTS.c.stock == 0)
    if f.q is not None:
        # websearch syntax never raises on user input (unlike to_tsquery); bound parameter.
        conditions.append(SEARCH.op("@@")(func.websearch_to_tsquery(TS_CONFIG, f.q)))
    return conditions


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


async def get_product(
    session: AsyncSession,
    *,
    product_id: uuid.UUID | None = None,
    sku: str | None = None,
    only_active: bool,
) -> Row[Any] | None:
    stmt = select(*PRODUCT_COLUMNS)
    stmt = (
        stmt.where(PRODUCTS.c.id == product_id)
        if product_id is not None
        else stmt.where(PRODUCTS.c.sku == sku)
    )
    if only_active:
        stmt = stmt.where(PRODUCTS.c.status == "active")
    return (await run(session, stmt)).first()
