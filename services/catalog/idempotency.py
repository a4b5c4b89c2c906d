"""Idempotency-Key for POST creates and imports (draft-ietf-httpapi-idempotency-key-header).

The key row is inserted in the same transaction as the create. A concurrent request
with the same key blocks on the unique (caller, key) index until the first commits,
then replays its answer; if the first rolls back, the second proceeds as new.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import FastAPI, Header, Request, Response
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from services.catalog.models import IDEMPOTENCY_KEYS as _T
from services.catalog.queries import run
from services.common import problems
from services.common.cancel import pause
from services.common.db import transaction

log = logging.getLogger("services.catalog.idempotency")
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
REPLAY_HEADER = "Idempotent-Replayed"
PURGE_INTERVAL_SECONDS = 600.0
BAD_KEY = problems.register("idempotency-key", 400)
KEY_REUSED = problems.register("idempotency-key-reused", 422)
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Retry-safe creates (1-255 visible ASCII characters)",
        # Documented, not enforced here: check_key answers 400 for a bad key.
        json_schema_extra={"pattern": r"^[\x21-\x7e]{1,255}$"},
    ),
]
Made = tuple[int, bytes, str | None]  # status, body, Location


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
        raise BAD_KEY("Idempotency-Key must be 1-255 visible ASCII characters.")
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
        raise KEY_REUSED("This Idempotency-Key was used with a different request.")
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


async def run_idempotent(
    session: AsyncSession,
    *,
    caller: str,
    key: str | None,
    request_hash: str,
    ttl_hours: int,
    make: Callable[[], Awaitable[Made]],
) -> Response | Made:
    """Run `make` once per (caller, key); a retry gets the stored answer back."""
    if key is not None:
        check_key(key)
        stored = await claim(
            session, caller=caller, key=key, request_hash=request_hash, ttl_hours=ttl_hours
        )
        if stored is not None:
            return stored.response()
    status_code, body, location = await make()
    if key is not None:
        await remember(
            session, caller=caller, key=key, status_code=status_code, body=body, location=location
        )
    return status_code, body, location


async def create_once(
    session: AsyncSession,
    request: Request,
    body: BaseModel,
    *,
    caller: str,
    key: str | None,
    ttl_hours: int,
    create: Callable[[], Awaitable[Any]],
    answer: Callable[[Any], Made],
) -> Any:
    """A create keyed by Idempotency-Key: the new row, or (a retry) the stored Response."""
    created: list[Any] = []

    async def make() -> Made:
        created.append(await create())
        return answer(created[0])

    request_hash = fingerprint(request.url.path, body.model_dump_json().encode())
    result = await run_idempotent(
        session, caller=caller, key=key, request_hash=request_hash, ttl_hours=ttl_hours, make=make
    )
    return result if isinstance(result, Response) else created[0]


async def purge_once(app: FastAPI) -> int:
    async with transaction(app.state.session_factory) as session:
        return await purge_expired(session, app.state.settings.idempotency_ttl_hours)


async def purge_loop(app: FastAPI) -> None:
    """A lifespan task: every few minutes; an error is logged and retried next round."""
    while True:
        try:
            deleted = await purge_once(app)
            if deleted:
                log.info("purged %d expired idempotency keys", deleted)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("idempotency purge failed: %s", type(exc).__name__)
        await pause(PURGE_INTERVAL_SECONDS)
