"""Business rules for categories: a tree by parent_id, slugs unique, no cycles."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy import exists, func, insert, literal_column, select
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from services.catalog.categories.queries import category_subtree_levels, get_category
from services.catalog.categories.schemas import CategoryCreate, CategoryUpdate
from services.catalog.models import CATEGORIES, CATEGORY_COLUMNS, MAX_CATEGORY_DEPTH, PRODUCTS
from services.catalog.products.reads import ProductReads
from services.catalog.products.service import emit
from services.catalog.queries import at_version, bumped, run, write_returning
from services.common import problems
from services.common.errors import ProblemError

# Every change of a parent (a move, a child created under a parent) holds this lock for the
# rest of its transaction: its checks (no cycle, depth) and its write then see the others'
# committed moves, so two moves that are each fine alone cannot make a cycle together.
TREE_LOCK_ID = int.from_bytes(b"cattree", "big")
HAS_CHILDREN = "The category has sub-categories; move or delete them first."


def _bad_parent(message: str) -> ProblemError:
    return problems.VALIDATION(
        message, extra={"errors": [{"field": "parent_id", "message": message, "code": "parent"}]}
    )


async def _depth(session: AsyncSession, category_id: uuid.UUID) -> int:
    """How many ancestors (including itself) a category has."""
    tree = (
        select(CATEGORIES.c.id, CATEGORIES.c.parent_id, literal_column("1").label("depth"))
        .where(CATEGORIES.c.id == category_id)
        .cte("ancestors", recursive=True)
    )
    parent = CATEGORIES.alias("parent")
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
    return await write_returning(
        session, stmt, CATEGORY_COLUMNS, "A category with this slug exists."
    )


async def _missing_or_stale(session: AsyncSession, category_id: uuid.UUID) -> ProblemError:
    found = await get_category(session, category_id=category_id)
    return problems.not_found("category") if found is None else problems.stale()


async def create_category(
    session: AsyncSession, reads: ProductReads, data: CategoryCreate
) -> Row[Any]:
    await _check_parent(session, data.parent_id)
    row = await _write(session, insert(CATEGORIES).values(id=uuid.uuid4(), **data.model_dump()))
    assert row is not None
    reads.invalidate_after_commit(session)
    return row


async def update_category(
    session: AsyncSession,
    reads: ProductReads,
    category_id: uuid.UUID,
    expected: Collection[int] | None,
    data: CategoryUpdate,
) -> Row[Any]:
    changes = data.model_dump(exclude_unset=True)
    if "parent_id" in changes:
        await _check_parent(session, changes["parent_id"], moving=category_id)
    stmt = at_version(CATEGORIES.update(), CATEGORIES, category_id, expected).values(
        **bumped(CATEGORIES, **changes)
    )
    row = await _write(session, stmt)
    if row is None:
        raise await _missing_or_stale(session, category_id)
    reads.invalidate_after_commit(session)  # moving a subtree changes category filters
    return row


async def delete_category(
    session: AsyncSession,
    reads: ProductReads,
    category_id: uuid.UUID,
    expected: Collection[int] | None,
) -> None:
    """Refused while it has sub-categories; its products become uncategorised (with their
    version bumped and an event each, so caches and ETags follow)."""
    has_children = exists().where(CATEGORIES.c.parent_id == category_id)
    if (await run(session, select(has_children))).scalar():
        raise problems.CONFLICT(HAS_CHILDREN)
    # Detach first: ON DELETE SET NULL alone would not bump the products' versions.
    detach = (
        PRODUCTS.update()
        .where(PRODUCTS.c.category_id == category_id)
        .values(**bumped(PRODUCTS, category_id=None))
        .returning(PRODUCTS.c.id)
    )
    detached = (await run(session, detach)).scalars().all()
    stmt = at_version(CATEGORIES.delete(), CATEGORIES, category_id, expected)
    try:
        deleted = (await run(session, stmt.returning(CATEGORIES.c.id))).first()
    except IntegrityError as exc:  # a child was added concurrently (FK RESTRICT)
        raise problems.CONFLICT(HAS_CHILDREN) from exc
    if deleted is None:
        raise await _missing_or_stale(session, category_id)
    for product_id in detached:
        emit(session, reads, "product.updated", product_id)
    reads.invalidate_after_commit(session)
