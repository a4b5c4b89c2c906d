"""Idempotency-Key for POST creates and imports (draft-ietf-httpapi-idempotency-key-header).

The key row is inserted in the same transaction as the create. A concurrent request
with the same key blocks on the unique (caller, key) index until the first commits,
then replays its answer; if the first rolls back, the second proceeds as new.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import Response
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from services.catalog.models import IdempotencyKey
from services.catalog.sql import run
from services.common.errors import ProblemError

_T: Any = IdempotencyKey.__table__  # type: ignore[attr-defined]
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
REPLAY_HEADER = "Idempotent-Replayed"


@dataclass(frozen=True)
class Stored:
    status_code: int
    body: bytes
    location: str | None

    def response(self) -> Response:
        headers = {REPLAY_HEADER: "true"}
        if self.location:
            headers["Location"] = self.location
        return Response(
            self.body, status_code=self.status_code, media_type="application/json", headers=headers
        )


def check_key(key: str) -> str:
    if not _KEY_RE.match(key):
        raise ProblemError(
            400, "Idempotency-Key must be 1-255 visible ASCII characters.", type_="idempotency-key"
        )
    return key


def fingerprint(path: str, body: bytes) -> str:
    return hashlib.sha256(path.encode() + b"\n" + body).hexdigest()


async def claim(
    session: AsyncSession, *, caller: str, key: str, request_hash: str, ttl_hours: int
) -> Stored | None:
    """None: this request owns the key (go on, then `remember`). Otherwise the stored answer."""
    expired = _T.c.created_at < func.now() - timedelta(hours=ttl_hours)
    stmt = (
        insert(_T)
        .values(
            caller=caller,
            key=key,
            request_hash=request_hash,
            id=func.gen_random_uuid(),
            status_code=0,
            response_body=b"",
            created_at=func.now(),
        )
        .on_conflict_do_update(
            constraint="uq_idempotency_keys_caller_key",
            set_={
                "request_hash": request_hash,
                "status_code": 0,
                "response_body": b"",
                "location": None,
                "created_at": func.now(),
            },
            where=expired,  # an expired key is reused as new
        )
        .returning(_T.c.id)
    )
    if (await run(session, stmt)).first() is not None:
        return None
    row = (
        await run(
            session,
            select(_T.c.request_hash, _T.c.status_code, _T.c.response_body, _T.c.location).where(
                _T.c.caller == caller, _T.c.key == key
            ),
        )
    ).one()
    if row.request_hash != request_hash:
        raise ProblemError(
            422,
            "This Idempotency-Key was used with a different request.",
            type_="idempotency-key-reused",
        )
    return Stored(row.status_code, bytes(row.response_body), row.location)


async def remember(
    session: AsyncSession,
    *,
    caller: str,
    key: str,
    status_code: int,
    body: bytes,
    location: str | None,
) -> None:
    await run(
        session,
        _T.update()
        .where(_T.c.caller == caller, _T.c.key == key)
        .values(status_code=status_code, response_body=body, location=location),
    )


async def purge_expired(session: AsyncSession, ttl_hours: int) -> int:
    """Delete keys past their replay window; returns how many."""
    result = await run(
        session, _T.delete().where(_T.c.created_at < func.now() - timedelta(hours=ttl_hours))
    )
    return int(result.rowcount or 0)
