"""Run Core statements (UPDATE ... RETURNING, executemany) on the request's session.

SQLModel deprecates `AsyncSession.execute`; its connection runs them in the same
transaction without the ORM layer (cheaper, and no deprecation warning).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import CursorResult
from sqlalchemy.sql.base import Executable
from sqlmodel.ext.asyncio.session import AsyncSession


async def run(session: AsyncSession, stmt: Executable, params: Any = None) -> CursorResult[Any]:
    connection = await session.connection()
    return await connection.execute(stmt, params)
