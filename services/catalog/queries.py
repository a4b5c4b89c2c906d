"""Query helpers every catalog resource uses: Core statements on the request's session,
and one keyset page of a select.

SQLModel deprecates `AsyncSession.execute`; the session's connection runs Core statements
(UPDATE ... RETURNING, executemany) in the same transaction without the ORM layer.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import CursorResult, Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.selectable import Select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common import problems
from services.common.pagination import CursorCodec, PageResult, SortKey, build_page, keyset_select


async def run(session: AsyncSession, stmt: Executable, params: Any = None) -> CursorResult[Any]:
    connection = await session.connection()
    return await connection.execute(stmt, params)


def at_version(stmt: Any, table: Any, row_id: uuid.UUID, expected: Collection[int] | None) -> Any:
    """An UPDATE or DELETE of one row, only while it is at one of the `expected` versions
    (the If-Match list; None: any version)."""
    stmt = stmt.where(table.c.id == row_id)
    return stmt if expected is None else stmt.where(table.c.version.in_(expected))


def bumped(table: Any, **values: Any) -> dict[str, Any]:
    """The values of a write: every write moves the version (the ETag) and updated_at."""
    return {**values, "version": table.c.version + 1, "updated_at": func.now()}


async def write_returning(
    session: AsyncSession, stmt: Any, columns: Sequence[Any], duplicate: str
) -> Row[Any] | None:
    """The written row; a unique violation is a 409 saying `duplicate`."""
    try:
        return (await run(session, stmt.returning(*columns))).first()
    except IntegrityError as exc:
        raise problems.CONFLICT(duplicate) from exc


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
