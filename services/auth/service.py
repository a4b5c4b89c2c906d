"""Account rules (no HTTP): registration, email verification, password reset and change.

Every function works inside the caller's transaction; emails and events are outbox
rows in that same transaction, so they leave only if the change is committed.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.auth import metrics
from services.auth.context import AuthContext, Client
from services.auth.crypto import new_token, token_hash
from services.auth.models import Account, OneTimeToken, Outbox
from services.auth.rules import (
    ACTIVE,
    INVALID_PASSWORD,
    INVALID_TOKEN,
    RESET,
    VERIFY,
    account_by_email,
    account_by_id,
    check_password_policy,
    enforce,
    normalise_email,
    revoke_all_sessions,
    too_many,
)
from services.common import problems
from services.common.clock import utcnow
from services.common.jwt import Principal
from services.common.outbox import add_email, add_event
from services.common.revocation import revoke_session, revoke_user_tokens
from services.common.sealing import seal

# ---- one-time tokens --------------------------------------------------------------------


async def issue_one_time_token(
    session: AsyncSession, account: Account, purpose: str, ttl_seconds: int
) -> str:
    """A fresh token; earlier unused ones of the same purpose stop working."""
    moment = utcnow()
    await session.exec(
        update(OneTimeToken)
        .where(
            col(OneTimeToken.account_id) == account.id,
            col(OneTimeToken.purpose) == purpose,
            col(OneTimeToken.used_at).is_(None),
        )
        .values(used_at=moment)
    )
    token = new_token()
    session.add(
        OneTimeToken(
            account_id=account.id,
            purpose=purpose,
            token_hash=token_hash(token),
            created_at=moment,
            expires_at=moment + timedelta(seconds=ttl_seconds),
        )
    )
    return token


async def find_one_time_token(
    session: AsyncSession, token: str, purpose: str
) -> OneTimeToken | None:
    """The live token row, or None (unknown, spent, expired or of another purpose)."""
    result = await session.exec(
        select(OneTimeToken).where(OneTimeToken.token_hash == token_hash(token))
    )
    row = result.first()
    if row is None or row.purpose != purpose or row.used_at is not None:
        return None
    if row.expires_at <= utcnow():
        return None
    return row


async def spend_one_time_token(session: AsyncSession, row: OneTimeToken) -> bool:
    """Mark it used, atomically: of two concurrent uses, only one wins."""
    result = await session.exec(
        update(OneTimeToken)
        .where(col(OneTimeToken.id) == row.id, col(OneTimeToken.used_at).is_(None))
        .values(used_at=utcnow())
        .returning(col(OneTimeToken.id))
    )
    return result.first() is not None


def link(ctx: AuthContext, path: str, token: str) -> str:
    return f"{ctx.settings.app_url.rstrip('/')}/{path}?token={token}"


def queue_link_email(
    session: AsyncSession, ctx: AuthContext, account: Account, template: str, url: str
) -> None:
    """An email carrying a one-time link: the link is sealed for the worker (only the
    token's hash is kept in clear anywhere)."""
    add_email(
        session,
        Outbox,
        template=template,
        to=account.email,
        context={},
        sealed=seal(ctx.settings.email_link_secret, {"link": url}),
    )


def queue_verification(
    session: AsyncSession, ctx: AuthContext, account: Account, token: str
) -> None:
    queue_link_email(session, ctx, account, VERIFY, link(ctx, "verify-email", token))


# ---- registration and verification ------------------------------------------------------


async def register(
    session: AsyncSession, ctx: AuthContext, email: str, password: str, client: Client
) -> None:
    """Create an unverified account, or tell the existing owner; the caller cannot tell which."""
    await enforce(ctx, ctx.limits.register_ip, client.ip)
    email = normalise_email(email)
    check_password_policy(password, email, "body.password")
    # Hash in every branch: the response time must not reveal an existing account.
    password_hash = await ctx.hasher.hash(password)
    moment = utcnow()
    account_id = uuid.uuid4()
    # ON CONFLICT: two concurrent registrations of one email never become a 500.
    inserted = await session.exec(
        insert(Account)
        .values(
            id=account_id,
            email=email,
            password_hash=password_hash,
            role="user",
            status=ACTIVE,
            email_verified=False,
            created_at=moment,
            updated_at=moment,
        )
        .on_conflict_do_nothing(index_elements=["email"])
        .returning(col(Account.id))
    )
    if inserted.first() is None:
        await _registration_of_existing(session, ctx, email)
        return
    account = await session.get(Account, account_id)
    assert account is not None
    token = await issue_one_time_token(
        session, account, VERIFY, ctx.settings.verify_token_ttl_seconds
    )
    queue_verification(session, ctx, account, token)
    add_event(
        session,
        Outbox,
        "user.registered",
        {
            "user_id": str(account.id),
            "email": email,
            "role": account.role,
            "created_at": moment.isoformat(),
        },
    )
    metrics.REGISTRATIONS.inc()


async def _registration_of_existing(session: AsyncSession, ctx: AuthContext, email: str) -> None:
    account = await account_by_email(session, email)
    if account is None or account.status != ACTIVE:
        return
    # Repeated attempts must not flood the owner's inbox; the caller sees 202 either way.
    if await ctx.limiter.hit(ctx.limits.email_account, "notify:" + email) is not None:
        return
    if account.email_verified:
        add_email(
            session,
            Outbox,
            template="register_attempt",
            to=account.email,
            context={
                "login_link": f"{ctx.settings.app_url.rstrip('/')}/login",
                "reset_link": f"{ctx.settings.app_url.rstrip('/')}/forgot-password",
            },
        )
    else:
        # The owner may have lost the first email: send a fresh link.
        token = await issue_one_time_token(
            session, account, VERIFY, ctx.settings.verify_token_ttl_seconds
        )
        queue_verification(session, ctx, account, token)


async def verify_email(session: AsyncSession, ctx: AuthContext, token: str) -> None:
    row = await find_one_time_token(session, token, VERIFY)
    if row is None or not await spend_one_time_token(session, row):
        raise INVALID_TOKEN("The verification link is invalid or has expired.")
    account = await session.get(Account, row.account_id)
    if account is None or account.status != ACTIVE:
        raise INVALID_TOKEN("The verification link is invalid or has expired.")
    if not account.email_verified:
        account.email_verified = True
        account.updated_at = utcnow()
        session.add(account)
        add_event(session, Outbox, "user.email_verified", {"user_id": str(account.id)})
        # Sessions opened before the address was proven may be a squatter's (anyone can
        # register someone else's address and log in unverified): none survives it.
        await revoke_all_sessions(session, account.id, "email_verified")
        await revoke_user_tokens(ctx.redis, str(account.id), at=time.time())


async def resend_verification(
    session: AsyncSession, ctx: AuthContext, email: str, client: Client
) -> None:
    await enforce(ctx, ctx.limits.email_ip, client.ip)
    await enforce(ctx, ctx.limits.email_account, "resend:" + normalise_email(email))
    account = await account_by_email(session, email)
    if account is None or account.email_verified or account.status != ACTIVE:
        return
    token = await issue_one_time_token(
        session, account, VERIFY, ctx.settings.verify_token_ttl_seconds
    )
    queue_verification(session, ctx, account, token)


# ---- passwords --------------------------------------------------------------------------


async def forgot_password(
    session: AsyncSession, ctx: AuthContext, email: str, client: Client
) -> None:
    await enforce(ctx, ctx.limits.email_ip, client.ip)
    await enforce(ctx, ctx.limits.email_account, "forgot:" + normalise_email(email))
    account = await account_by_email(session, email)
    if account is None or account.status != ACTIVE:
        return
    token = await issue_one_time_token(
        session, account, RESET, ctx.settings.reset_token_ttl_seconds
    )
    queue_link_email(session, ctx, account, RESET, link(ctx, "reset-password", token))


async def _set_password(
    session: AsyncSession, ctx: AuthContext, account: Account, password: str
) -> None:
    account.password_hash = await ctx.hasher.hash(password)
    account.updated_at = utcnow()
    session.add(account)
    add_email(session, Outbox, template="password_changed", to=account.email, context={})


async def reset_password(
    session: AsyncSession, ctx: AuthContext, token: str, new_password: str
) -> None:
    row = await find_one_time_token(session, token, RESET)
    account = await session.get(Account, row.account_id) if row else None
    if row is None or account is None or account.status != ACTIVE:
        raise INVALID_TOKEN("The reset link is invalid or has expired.")
    check_password_policy(new_password, account.email, "body.new_password")
    if not await spend_one_time_token(session, row):
        raise INVALID_TOKEN("The reset link is invalid or has expired.")
    await _set_password(session, ctx, account, new_password)
    # The link arrived by email: the address is proven.
    account.email_verified = True
    await revoke_all_sessions(session, account.id, "password_reset")
    await revoke_user_tokens(ctx.redis, str(account.id), at=time.time())
    await ctx.lockout.succeeded(account.email)
    metrics.PASSWORD_RESETS.inc()


async def change_password(
    session: AsyncSession, ctx: AuthContext, principal: Principal, current: str, new: str
) -> None:
    account = await account_by_id(session, principal.user_id)
    if account is None or account.status != ACTIVE:
        raise problems.ACCOUNT_DISABLED("This account is disabled.")
    # Limited like a login: with a stolen access token this would otherwise be an
    # unlimited oracle for the current password. Per account, so no IP helps.
    subject = "password-change:" + str(account.id)
    await enforce(ctx, ctx.limits.login_account, subject)
    locked_for = await ctx.lockout.retry_after(subject)
    if locked_for is not None:
        raise too_many("auth_password_change_lockout", locked_for)
    ok, _ = await ctx.hasher.verify(current, account.password_hash)
    if not ok:
        await ctx.lockout.failed(subject)
        raise INVALID_PASSWORD("The current password is not correct.")
    await ctx.lockout.succeeded(subject)
    check_password_policy(new, account.email, "body.new_password")
    await _set_password(session, ctx, account, new)
    # Other devices must log in again with the new password; this one stays.
    others = await revoke_all_sessions(
        session, account.id, "password_changed", keep=uuid.UUID(principal.session_id)
    )
    for sid in others:
        await revoke_session(ctx.redis, str(sid))
