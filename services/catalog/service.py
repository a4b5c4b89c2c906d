"""Business rules for products: creates, optimistic updates, archive, delete, stock.

Every write is one SQL statement guarded by its WHERE clause (version for optimistic
locking, stock for the non-negative rule), so concurrent writers never lose updates.
Each write queues a product.* event in the same transaction (outbox).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import BigInteger, cast, exists, func, insert, select
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from services.catalog.listing import PRODUCT_COLUMNS
from services.catalog.models import Category, Outbox, Product
from services.catalog.schemas import ProductCreate, ProductUpdate
from services.catalog.sql import run
from services.common.errors import ProblemError
from services.common.outbox import add_event

P: Any = Product.__table__  # type: ignore[attr-defined]
C: Any = Category.__table__  # type: ignore[attr-defined]
MAX_STOCK = 2_147_483_647  # the integer column's range


def not_found(what: str = "product") -> ProblemError:
    return ProblemError(404, f"No such {what}.", type_="not-found")


def stale() -> ProblemError:
    return ProblemError(
        412, "The resource was changed since you read it; fetch it again.", type_="stale-version"
    )


def conflict(detail: str) -> ProblemError:
    return ProblemError(409, detail, type_="conflict")


def emit(session: AsyncSession, topic: str, product_id: uuid.UUID) -> None:
    add_event(session, Outbox, topic, {"product_id": str(product_id)})


async def category_exists(session: AsyncSession, category_id: uuid.UUID) -> bool:
    return bool((await run(session, select(exists().where(C.c.id == category_id)))).scalar())


async def require_category(session: AsyncSession, category_id: uuid.UUID | None) -> None:
    if category_id is not None and not await category_exists(session, category_id):
        raise ProblemError(
            422,
            "The category does not exist.",
            type_="validation",
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


async def get_product(
    session: AsyncSession,
    *,
    product_id: uuid.UUID | None = None,
    sku: str | None = None,
    only_active: bool,
) -> Row[Any] | None:
    stmt = select(*PRODUCT_COLUMNS)
    stmt = (
        stmt.where(P.c.id == product_id) if product_id is not None else stmt.where(P.c.sku == sku)
    )
    if only_active:
        stmt = stmt.where(P.c.status == "active")
    return (await run(session, stmt)).first()


async def _write(session: AsyncSession, stmt: Any, duplicate: str) -> Row[Any] | None:
    try:
        return (await run(session, stmt.returning(*PRODUCT_COLUMNS))).first()
    except IntegrityError as exc:
        raise conflict(duplicate) from exc


async def create_product(session: AsyncSession, data: ProductCreate) -> Row[Any]:
    await require_category(session, data.category_id)
    values = data.model_dump()
    values["id"] = uuid.uuid4()
    row = await _write(session, insert(P).values(**values), "A product with this SKU exists.")
    assert row is not None
    emit(session, "product.created", row.id)
    return row


async def update_product(
    session: AsyncSession, product_id: uuid.UUID, expected: int | None, data: ProductUpdate
) -> Row[Any]:
    changes = data.model_dump(exclude_unset=True)
    for name in ("sku", "name", "price", "currency", "status", "description", "image_urls"):
        if name in changes and changes[name] is None:
            raise ProblemError(
                422,
                f"{name} cannot be null.",
                type_="validation",
                extra={"errors": [{"field": name, "message": "cannot be null", "code": "null"}]},
            )
    if "category_id" in changes:
        await require_category(session, changes["category_id"])
    stmt = P.update().where(P.c.id == product_id)
    if expected is not None:
        stmt = stmt.where(P.c.version == expected)
    stmt = stmt.values(**changes, version=P.c.version + 1, updated_at=func.now())
    row = await _write(session, stmt, "A product with this SKU exists.")
    if row is None:
        raise await _missing_or_stale(session, product_id)
    emit(session, "product.updated", row.id)
    return row


async def archive_product(session: AsyncSession, product_id: uuid.UUID) -> Row[Any]:
    stmt = (
        P.update()
        .where(P.c.id == product_id)
        .values(status="archived", version=P.c.version + 1, updated_at=func.now())
    )
    row = await _write(session, stmt, "conflict")
    if row is None:
        raise not_found()
    emit(session, "product.updated", row.id)
    return row


async def delete_product(
    session: AsyncSession, product_id: uuid.UUID, expected: int | None
) -> None:
    stmt = P.delete().where(P.c.id == product_id)
    if expected is not None:
        stmt = stmt.where(P.c.version == expected)
    deleted = (await run(session, stmt.returning(P.c.id))).first()
    if deleted is None:
        raise await _missing_or_stale(session, product_id)
    emit(session, "product.deleted", product_id)


async def adjust_stock(session: AsyncSession, product_id: uuid.UUID, delta: int) -> Row[Any]:
    """One atomic UPDATE: the row lock serialises concurrent changes, the WHERE keeps the
    result in 0..MAX_STOCK (computed in bigint, so it can never overflow into an error)."""
    wide = cast(P.c.stock, BigInteger) + delta
    stmt = (
        P.update()
        .where(P.c.id == product_id, wide >= 0, wide <= MAX_STOCK)
        .values(stock=P.c.stock + delta, version=P.c.version + 1, updated_at=func.now())
    )
    row = (await run(session, stmt.returning(*PRODUCT_COLUMNS))).first()
    if row is None:
        if await get_product(session, product_id=product_id, only_active=False) is None:
            raise not_found()
        if delta > 0:
            raise conflict("The stock would exceed its maximum.")
        raise ProblemError(409, "Not enough stock for this change.", type_="insufficient-stock")
    emit(session, "product.updated", row.id)
    return row


async def _missing_or_stale(session: AsyncSession, product_id: uuid.UUID) -> ProblemError:
    found = await get_product(session, product_id=product_id, only_active=False)
    return not_found() if found is None else stale()
