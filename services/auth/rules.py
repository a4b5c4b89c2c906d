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
from services.common import problems
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
    return problems.RATE_LIMITED(
        "Too many attempts. Try again later.", headers={"Retry-After": str(retry_after)}
    )


# The auth service's own problem types (services.common.problems).
INVALID_CREDENTIALS = problems.register("invalid-credentials", 401)
INVALID_REFRESH_TOKEN = problems.register("invalid-refresh-token", 401)
INVALID_TOKEN = problems.register("invalid-token", 400)
INVALID_PASSWORD = problems.register("invalid-password", 400)
EMAIL_NOT_VERIFIED = problems.register("email-not-verified", 403)


def bad_credentials() -> ProblemError:
    return INVALID_CREDENTIALS("Incorrect email or password.")


def invalid_refresh() -> ProblemError:
    return INVALID_REFRESH_TOKEN("The refresh token is not valid.")


def check_password_policy(password: str, email: str, field: str) -> None:
    failures = policy_problems(password, email)
    if failures:
        raise problems.VALIDATION(
            "The password does not meet the policy.",
            extra={
                "errors": [
                    {"field": field, "message": f"Password {p}.", "code": "password_policy"}
                    for p in failures
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
