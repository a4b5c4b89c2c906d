"""The admin directory: keyset pages over profiles with filters, sorts and prefix search."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.pagination import (
    CursorCodec,
    PageResult,
    SortKey,
    build_page,
    keyset_select,
    query_fingerprint,
)
from services.users.models import Profile

# Matches the expression of ix_users_profiles_name_id, so the name sort is index-backed.
NAME_KEY = func.lower(col(Profile.display_name))

SORTS: dict[str, list[SortKey]] = {
    "created": [SortKey(col(Profile.created_at), "created_at"), SortKey(col(Profile.id), "id")],
    "-created": [
        SortKey(col(Profile.created_at), "created_at", descending=True),
        SortKey(col(Profile.id), "id", descending=True),
    ],
    "name": [SortKey(NAME_KEY, "name_key"), SortKey(col(Profile.id), "id")],
    "-name": [
        SortKey(NAME_KEY, "name_key", descending=True),
        SortKey(col(Profile.id), "id", descending=True),
    ],
}


@dataclass(frozen=True, slots=True)
class Filters:
    role: str | None = None
    status: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    q: str | None = None

    def fingerprint_data(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "status": self.status,
            "q": self.q,
            "after": self.created_after.isoformat() if self.created_after else None,
            "before": self.created_before.isoformat() if self.created_before else None,
        }


@dataclass(frozen=True, slots=True)
class Row:
    """A profile with the values its sort keys are read from (cursor values come from SQL)."""

    profile: Profile
    name_key: str

    @property
    def id(self) -> uuid.UUID:
        return self.profile.id

    @property
    def created_at(self) -> datetime:
        return self.profile.created_at


def like_prefix(text: str) -> str:
    """`text%` for LIKE with the wildcards in `text` escaped (a literal prefix)."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


async def list_profiles(
    session: AsyncSession,
    codec: CursorCodec,
    *,
    filters: Filters,
    sort: str,
    cursor: str | None,
    limit: int,
) -> PageResult[Row]:
    keys = SORTS[sort]
    query_id = query_fingerprint(sort, filters.fingerprint_data())
    state = codec.decode(cursor, query_id=query_id, key_count=len(keys)) if cursor else None
    stmt: Any = select(Profile, NAME_KEY.label("name_key"))
    if filters.role:
        stmt = stmt.where(col(Profile.role) == filters.role)
    if filters.status:
        stmt = stmt.where(col(Profile.status) == filters.status)
    if filters.created_after:
        stmt = stmt.where(col(Profile.created_at) > filters.created_after)
    if filters.created_before:
        stmt = stmt.where(col(Profile.created_at) < filters.created_before)
    if filters.q:
        pattern = like_prefix(filters.q)
        stmt = stmt.where(
            or_(
                func.lower(col(Profile.email)).like(pattern, escape="\\"),
                NAME_KEY.like(pattern, escape="\\"),
            )
        )
    stmt = keyset_select(stmt, keys, state, limit)
    rows = [Row(profile, name_key) for profile, name_key in (await session.exec(stmt)).all()]
    return build_page(rows, keys=keys, state=state, limit=limit, codec=codec, query_id=query_id)
