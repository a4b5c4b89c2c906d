"""Business rules for products: creates, optimistic updates, archive, delete, stock.

Every write is one SQL statement guarded by its WHERE clause (version for optimistic
locking, stock for the non-negative rule), so concurrent writers never lose updates.
Each write queues a product.* event in the same transaction (outbox) and drops the
product's cached answers once the transaction has committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy import BigInteger, cast, exists, insert, select
from sqlalchemy.engine import Row
from sqlmodel.ext.asyncio.session import AsyncSession

from services.catalog.models import CATEGORIES, PRODUCT_COLUMNS, PRODUCTS, Outbox
from services.catalog.products.queries import get_product
from services.catalog.products.reads import ProductReads
from services.catalog.products.schemas import ProductCreate, ProductUpdate
from services.catalog.queries import at_version, bumped, run, write_returning
from services.common import problems
from services.common.errors import ProblemError
from services.common.outbox import add_event

MAX_STOCK = 2_147_483_647  # the integer column's range
DUPLICATE_SKU = "A product with this SKU exists."
INSUFFICIENT_STOCK = problems.register("insufficient-stock", 409)


def emit(session: AsyncSession, reads: ProductReads, topic: str, product_id: uuid.UUID) -> None:
    """The product.* event, and the product's cached answers dropped after the commit."""
    add_event(session, Outbox, topic, {"product_id": str(product_id)})
    reads.invalidate_after_commit(session, product_id)


async def require_category(session: AsyncSession, category_id: uuid.UUID | None) -> None:
    if category_id is None:
        return
    found = (await run(session, select(exists().where(CATEGORIES.c.id == category_id)))).scalar()
    if not found:
        raise problems.VALIDATION(
            "The category does not exist.",
            extra={
                "errors": [
                    {
                        "field": "category_id",
                        "message": "unknown category",
                        "code": "unknown_category",
                    }
                ]
            },
        )


async def _write(session: AsyncSession, stmt: Any, duplicate: str) -> Row[Any] | None:
    return await write_returning(session, stmt, PRODUCT_COLUMNS, duplicate)


async def create_product(
    session: AsyncSession, reads: ProductReads, data: ProductCreate
) -> Row[Any]:
    await require_category(session, data.category_id)
    values = {**data.model_dump(), "id": uuid.uuid4()}
    row = await _write(session, insert(PRODUCTS).values(**values), DUPLICATE_SKU)
    assert row is not None
    emit(session, reads, "product.created", row.id)
    return row


async def update_product(
    session: AsyncSession,
    reads: ProductReads,
    product_id: uuid.UUID,
    expected: Collection[int] | None,
    data: ProductUpdate,
) -> Row[Any]:
    changes = data.model_dump(exclude_unset=True)
    if "category_id" in changes:
        await require_category(session, changes["category_id"])
    stmt = at_version(PRODUCTS.update(), PRODUCTS, product_id, expected).values(
        **bumped(PRODUCTS, **changes)
    )
    row = await _write(session, stmt, DUPLICATE_SKU)
    if row is None:
        raise await _missing_or_stale(session, product_id)
    emit(session, reads, "product.updated", row.id)
    return row


async def archive_product(
    session: AsyncSession, reads: ProductReads, product_id: uuid.UUID
) -> Row[Any]:
    stmt = at_version(PRODUCTS.update(), PRODUCTS, product_id, None).values(
        **bumped(PRODUCTS, status="archived")
    )
    row = await _write(session, stmt, "conflict")
    if row is None:
        raise problems.not_found("product")
    emit(session, reads, "product.updated", row.id)
    return row


async def delete_product(
    session: AsyncSession,
    reads: ProductReads,
    product_id: uuid.UUID,
    expected: Collection[int] | None,
) -> None:
    stmt = at_version(PRODUCTS.delete(), PRODUCTS, product_id, expected)
    deleted = (await run(session, stmt.returning(PRODUCTS.c.id))).first()
    if deleted is None:
        raise await _missing_or_stale(session, product_id)
    emit(session, reads, "product.deleted", product_id)


async def adjust_stock(
    session: AsyncSession, reads: ProductReads, product_id: uuid.UUID, delta: int
) -> Row[Any]:
    """One atomic UPDATE: the row lock serialises concurrent changes, the WHERE keeps the
    result in 0..MAX_STOCK (computed in bigint, so it can never overflow into an error)."""
    wide = cast(PRODUCTS.c.stock, BigInteger) + delta
    stmt = (
        at_version(PRODUCTS.update(), PRODUCTS, product_id, None)
        .where(wide >= 0, wide <= MAX_STOCK)
        .values(**bumped(PRODUCTS, stock=PRODUCTS.c.stock + delta))
    )
    row = (await run(session, stmt.returning(*PRODUCT_COLUMNS))).first()
    if row is None:
        if await get_product(session, product_id=product_id, only_active=False) is None:
            raise problems.not_found("product")
        if delta > 0:
            raise problems.CONFLICT("The stock would exceed its maximum.")
        raise INSUFFICIENT_STOCK("Not enough stock for this change.")
    emit(session, reads, "product.updated", row.id)
    return row


async def _missing_or_stale(session: AsyncSession, product_id: uuid.UUID) -> ProblemError:
    found = await get_product(session, product_id=product_id, only_active=False)
    return problems.not_found("product") if found is None else problems.stale()
