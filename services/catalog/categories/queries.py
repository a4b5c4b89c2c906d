"""Category reads: one category, lists, and the subtree under a category."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import literal_column, select
from sqlalchemy.engine import Row
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.catalog.models import CATEGORIES, CATEGORY_COLUMNS, MAX_CATEGORY_DEPTH
from services.catalog.queries import page_of, run
from services.common.pagination import CursorCodec, PageResult, SortKey, query_fingerprint

CATEGORY_SORTS: dict[str, list[SortKey]] = {
    "name": [SortKey(CATEGORIES.c.name, "name"), SortKey(CATEGORIES.c.id, "id")],
    "newest": [
        SortKey(CATEGORIES.c.created_at, "created_at", True),
        SortKey(CATEGORIES.c.id, "id", True),
    ],
}


def category_subtree_levels(category_id: uuid.UUID, levels: int = MAX_CATEGORY_DEPTH) -> Any:
    """(id, level) of a category (level 1) and its descendants down to `levels` levels: a
    recursive CTE over parent_id that stops there, so a cycle in the data cannot make it
    run away."""
    tree = (
        select(CATEGORIES.c.id, literal_column("1").label("level"))
        .where(CATEGORIES.c.id == category_id)
        .cte("subtree", recursive=True)
    )
    child = CATEGORIES.alias("child")
    return tree.union_all(
        select(child.c.id, (tree.c.level + 1).label("level")).where(
            child.c.parent_id == tree.c.id, tree.c.level < levels
        )
    )


def category_subtree(category_id: uuid.UUID) -> Select[Any]:
    """Ids of a category and all its descendants (at most MAX_CATEGORY_DEPTH levels)."""
    return select(category_subtree_levels(category_id).c.id)


async def get_category(
    session: AsyncSession, *, category_id: uuid.UUID | None = None, slug: str | None = None
) -> Row[Any] | None:
    stmt = select(*CATEGORY_COLUMNS)
    stmt = (
        stmt.where(CATEGORIES.c.id == category_id)
        if category_id is not None
        else stmt.where(CATEGORIES.c.slug == slug)
    )
    return (await run(session, stmt)).first()


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
        conditions.append(CATEGORIES.c.parent_id == parent)
    if root is True:
        conditions.append(CATEGORIES.c.parent_id.is_(None))
    elif root is False:
        conditions.append(CATEGORIES.c.parent_id.is_not(None))
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
