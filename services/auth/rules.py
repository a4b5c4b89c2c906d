"""Rules shared by the account and session flows: errors, limits, lookups, revocation."""

from __future__ import annotations

import uuid

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.auth.context import AuthContext
from services.auth.models import Account, Session
from services.auth.passwords import policy_problems
from services.auth.ratelimit import Limit
from services.common.clock import utcnow
from services.common.errors import ProblemError
from services.common.metrics import RATE_LIMITED

VERIFY = "verify_email"
RESET = "reset_password"
ACTIVE = "active"


def normalise_email(email: str) -> str:
    return email.strip().lower()


# ---- errors -----------------------------------------------------------------------------


def too_many(limit_name: str, retry_after: int) -> ProblemError:
    RATE_LIMITED.labels(limit_name).inc()
    return ProblemError(
        429,
        "Too many attempts. Try again later.",
        type_="rate-limited",
        headers={"Retry-After": str(retry_after)},
    )


def bad_credentials() -> ProblemError:
    return ProblemError(401, "Incorrect email or password.", type_="invalid-credentials")


def invalid_refresh() -> ProblemError:
    return ProblemError(401, "The refresh token is not valid.", type_="invalid-refresh-token")


def check_password_policy(password: str, email: str, field: str) -> None:
    problems = policy_problems(password, email)
    if problems:
        raise ProblemError(
            422,
            "The password does not meet the policy.",
            type_="validation",
            extra={
                "errors": [
                    {"field": field, "message": f"Password {p}.", "code": "password_policy"}
                    for p in problems
                ]
            },
        )


async def enforce(ctx: AuthContext, limit: Limit, subject: str) -> None:
    retry_after = await ctx.limiter.hit(limit, subject)
    if retry_after is not None:
        raise too_many(limit.name, retry_after)


# ---- lookups ----------------------------------------------------------------------------


async def account_by_email(session: AsyncSession, email: str) -> Account | None:
    result = await session.exec(select(Account).where(Account.email == normalise_email(email)))
    return result.first()


async def account_by_id(session: AsyncSession, user_id: str | uuid.UUID) -> Account | None:
    try:
        key = user_id if isinstance(user_id, uuid.UUID) else uuid.UUID(user_id)
    except ValueError:
        return None
    return await session.get(Account, key)


async def revoke_all_sessions(
    session: AsyncSession, account_id: uuid.UUID, reason: str, *, keep: uuid.UUID | None = None
) -> list[uuid.UUID]:
    """Revoke every live session of the account (but `keep`) in the DB: their refresh
    tokens die. Returns the revoked ids (the caller decides what Redis must learn)."""
    stmt = (
        update(Session)
        .where(col(Session.account_id) == account_id, col(Session.revoked_at).is_(None))
        .values(revoked_at=utcnow(), revoke_reason=reason)
        .returning(col(Session.id))
    )
    if keep is not None:
        stmt = stmt.where(col(Session.id) != keep)
    return list((await session.exec(stmt)).scalars())
