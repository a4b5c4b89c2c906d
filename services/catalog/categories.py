"""Business rules for categories: a tree by parent_id, slugs unique, no cycles."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import exists, func, insert, literal_column, select
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from services.catalog.listing import CATEGORY_COLUMNS, category_subtree_levels
from services.catalog.models import MAX_CATEGORY_DEPTH, Category, Product
from services.catalog.schemas import CategoryCreate, CategoryUpdate
from services.catalog.service import conflict, emit, not_found, stale
from services.catalog.sql import run
from services.common.errors import ProblemError

C: Any = Category.__table__  # type: ignore[attr-defined]
P: Any = Product.__table__  # type: ignore[attr-defined]
# Every change of a parent (a move, a child created under a parent) holds this lock for the
# rest of its transaction: its checks (no cycle, depth) and its write then see the others'
# committed moves, so two moves that are each fine alone cannot make a cycle together.
TREE_LOCK_ID = int.from_bytes(b"cattree", "big")


def _bad_parent(message: str) -> ProblemError:
    return ProblemError(
        422,
        message,
        type_="validation",
        extra={"errors": [{"field": "parent_id", "message": message, "code": "parent"}]},
    )


async def get_category(
    session: AsyncSession, *, category_id: uuid.UUID | None = None, slug: str | None = None
) -> Row[Any] | None:
    stmt = select(*CATEGORY_COLUMNS)
    stmt = (
        stmt.where(C.c.id == category_id)
        if category_id is not None
        else stmt.where(C.c.slug == slug)
    )
    return (await run(session, stmt)).first()


async def _depth(session: AsyncSession, category_id: uuid.UUID) -> int:
    """How many ancestors (including itself) a category has."""
    tree = (
        select(C.c.id, C.c.parent_id, literal_column("1").label("depth"))
        .where(C.c.id == category_id)
        .cte("ancestors", recursive=True)
    )
    parent = C.alias("parent")
    tree = tree.union_all(
        select(parent.c.id, parent.c.parent_id, (tree.c.depth + 1).label("depth")).where(
            parent.c.id == tree.c.parent_id, tree.c.depth < MAX_CATEGORY_DEPTH + 1
        )
    )
    return int((await run(session, select(func.max(tree.c.depth)))).scalar() or 0)


async def _check_parent(
    session: AsyncSession, parent_id: uuid.UUID | None, moving: uuid.UUID | None = None
) -> None:
    """The tree rules for giving a category (new, or `moving` with its subtree) this
    parent: it exists, it is not inside the subtree, and the deepest node ends at most at
    depth MAX_CATEGORY_DEPTH. The one place the tree's shape is checked: it takes the
    tree lock first."""
    if parent_id is None:
        return  # a root: no cycle, no deeper than before
    await run(session, select(func.pg_advisory_xact_lock(TREE_LOCK_ID)))
    if await get_category(session, category_id=parent_id) is None:
        raise _bad_parent("The parent category does not exist.")
    height = 1
    if moving is not None:
        # One level more than allowed: a subtree cut off there is too deep anyway, so a
        # parent beyond the cut (a cycle not seen) is refused by the depth rule below.
        subtree = category_subtree_levels(moving, MAX_CATEGORY_DEPTH + 1)
        rows = (await run(session, select(subtree.c.id, subtree.c.level))).all()
        if any(row.id == parent_id for row in rows):
            raise _bad_parent("A category cannot move under itself or its descendants.")
        height = max(row.level for row in rows) if rows else 1
    if await _depth(session, parent_id) + height > MAX_CATEGORY_DEPTH:
        raise _bad_parent(f"The tree would be deeper than {MAX_CATEGORY_DEPTH} levels.")


async def _write(session: AsyncSession, stmt: Any) -> Row[Any] | None:
    try:
        return (await run(session, stmt.returning(*CATEGORY_COLUMNS))).first()
    except IntegrityError as exc:
        raise conflict("A category with this slug exists.") from exc


async def create_category(session: AsyncSession, data: CategoryCreate) -> Row[Any]:
    await _check_parent(session, data.parent_id)
    row = await _write(session, insert(C).values(id=uuid.uuid4(), **data.model_dump()))
    assert row is not None
    return row


async def update_category(
    session: AsyncSession, category_id: uuid.UUID, expected: int | None, data: CategoryUpdate
) -> Row[Any]:
    changes = data.model_dump(exclude_unset=True)
    for name in ("slug", "name"):
        if name in changes and changes[name] is None:
            raise ProblemError(422, f"{name} cannot be null.", type_="validation")
    if "parent_id" in changes:
        await _check_parent(session, changes["parent_id"], moving=category_id)
    stmt = C.update().where(C.c.id == category_id)
    if expected is not None:
        stmt = stmt.where(C.c.version == expected)
    stmt = stmt.values(**changes, version=C.c.version + 1, updated_at=func.now())
    row = await _write(session, stmt)
    if row is None:
        found = await get_category(session, category_id=category_id)
        raise not_found("category") if found is None else stale()
    return row


async def delete_category(
    session: AsyncSession, category_id: uuid.UUID, expected: int | None
) -> list[uuid.UUID]:
    """Refused while it has sub-categories; its products become uncategorised (returned,
    with their version bumped and an event each, so caches and ETags follow)."""
    has_children = (
        await run(session, select(exists().where(C.c.parent_id == category_id)))
    ).scalar()
    if has_children:
        raise conflict("The category has sub-categories; move or delete them first.")
    # Detach first: ON DELETE SET NULL alone would not bump the products' versions.
    detached = (
        (
            await run(
                session,
                P.update()
                .where(P.c.category_id == category_id)
                .values(category_id=None, version=P.c.version + 1, updated_at=func.now())
                .returning(P.c.id),
            )
        )
        .scalars()
        .all()
    )
    stmt = C.delete().where(C.c.id == category_id)
    if expected is not None:
        stmt = stmt.where(C.c.version == expected)
    try:
        deleted = (await run(session, stmt.returning(C.c.id))).first()
    except IntegrityError as exc:  # a child was added concurrently (FK RESTRICT)
        raise conflict("The category has sub-categories; move or delete them first.") from exc
    if deleted is None:
        found = await get_category(session, category_id=category_id)
        raise not_found("category") if found is None else stale()
    for product_id in detached:
        emit(session, "product.updated", product_id)
    return list(detached)
