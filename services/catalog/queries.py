"""Query helpers every catalog resource uses: Core statements on the request's session,
and one keyset page of a select.

SQLModel deprecates `AsyncSession.execute`; the session's connection runs Core statements
(UPDATE ... RETURNING, executemany) in the same transaction without the ORM layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import CursorResult, Row
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.selectable import Select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.pagination import CursorCodec, PageResult, SortKey, build_page, keyset_select


async def run(session: AsyncSession, stmt: Executable, params: Any = None) -> CursorResult[Any]:
    connection = await session.connection()
    return await connection.execute(stmt, params)


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
