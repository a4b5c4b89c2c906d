"""Session rules (no HTTP): login, refresh-token rotation with reuse detection, logout,
the session list. A session is a refresh-token family."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.auth import metrics
from services.auth.context import AuthContext, Client
from services.auth.crypto import new_token, token_hash
from services.auth.models import Account, RefreshToken, Session
from services.auth.rules import (
    ACTIVE,
    EMAIL_NOT_VERIFIED,
    INVALID_REFRESH_TOKEN,
    account_by_email,
    account_by_id,
    bad_credentials,
    enforce,
    invalid_refresh,
    normalise_email,
    revoke_all_sessions,
    too_many,
)
from services.auth.schemas import SessionOut, TokenResponse
from services.auth.tokens import AccessClaims, sign_access_token
from services.common import problems
from services.common.clock import utcnow
from services.common.jwt import Principal
from services.common.revocation import revoke_session, revoke_user_tokens

security_log = logging.getLogger("services.auth.security")

# ---- login, sessions, refresh -----------------------------------------------------------


async def _access_token(ctx: AuthContext, account: Account, session_id: uuid.UUID) -> str:
    key = await ctx.keys.signing_key()
    return sign_access_token(
        AccessClaims(str(account.id), str(session_id), account.role, account.email_verified),
        kid=key.kid,
        private_pem=key.private_pem,
        issuer=ctx.settings.jwt_issuer,
        audience=ctx.settings.jwt_audience,
        ttl_seconds=ctx.settings.access_token_ttl_seconds,
    )


async def _tokens_for(
    session: AsyncSession, ctx: AuthContext, account: Account, session_row: Session
) -> TokenResponse:
    token = new_token()
    moment = utcnow()
    session_row.expires_at = moment + timedelta(seconds=ctx.settings.refresh_token_ttl_seconds)
    session_row.last_used_at = moment
    session.add(session_row)
    await session.flush()  # the session row must exist before its refresh token
    session.add(
        RefreshToken(
            session_id=session_row.id,
            token_hash=token_hash(token),
            created_at=moment,
            expires_at=session_row.expires_at,
        )
    )
    return TokenResponse(
        access_token=await _access_token(ctx, account, session_row.id),
        refresh_token=token,
        expires_in=ctx.settings.access_token_ttl_seconds,
    )


async def login(
    session: AsyncSession,
    ctx: AuthContext,
    email: str,
    password: str,
    client: Client,
    device_token: str | None = None,
) -> TokenResponse:
    email = normalise_email(email)
    ctx.hasher.check_capacity()  # a login the hasher cannot take is refused before any I/O
    await enforce(ctx, ctx.limits.login_ip, client.ip)
    # A device this account logged in from before has its own limit and lockout; every
    # other client shares the account's (OWASP device cookies). Guessing stays bounded
    # either way, and whoever knows only the email cannot lock the owner's devices out.
    device = ctx.devices.device(device_token, email)
    subject = f"device:{email}:{device}" if device else email
    await enforce(ctx, ctx.limits.login_account, "login:" + subject)
    locked_for = await ctx.lockout.retry_after(subject)
    if locked_for is not None:
        metrics.LOGINS.labels("failure", "locked").inc()
        raise too_many("auth_login_lockout", locked_for)
    account = await account_by_email(session, email)
    # End the read's transaction before hashing: argon2id costs tens of ms of CPU, and a
    # pooled connection held meanwhile made the pool, not the CPU, the limit of a login
    # storm (pool timeouts, 503s). Later writes begin a new transaction.
    await session.commit()
    ok, needs_rehash = await ctx.hasher.verify(password, account.password_hash if account else None)
    if account is None or not ok:
        # Missing and wrong-password accounts are counted alike (no enumeration).
        await ctx.lockout.failed(subject)
        metrics.LOGINS.labels("failure", "bad_credentials").inc()
        raise bad_credentials()
    await ctx.lockout.succeeded(subject)
    if account.status != ACTIVE:
        metrics.LOGINS.labels("failure", "disabled").inc()
        raise problems.ACCOUNT_DISABLED("This account is disabled.")
    if not account.email_verified and not ctx.settings.allow_unverified_login:
        metrics.LOGINS.labels("failure", "unverified").inc()
        raise EMAIL_NOT_VERIFIED("Verify your email address first.")
    if needs_rehash:
        account.password_hash = await ctx.hasher.hash(password)
        account.updated_at = utcnow()
        session.add(account)
    session_row = Session(
        account_id=account.id,
        expires_at=utcnow(),
        user_agent=(client.user_agent or "")[:512] or None,
        ip=client.ip[:64],
    )
    tokens = await _tokens_for(session, ctx, account, session_row)
    tokens.device_token = ctx.devices.issue(email)  # a fresh one: its lifetime restarts
    metrics.LOGINS.labels("success", "ok").inc()
    return tokens


async def _revoke_family(
    session: AsyncSession, ctx: AuthContext, session_row: Session, reason: str
) -> None:
    if session_row.revoked_at is None:
        session_row.revoked_at = utcnow()
        session_row.revoke_reason = reason
        session.add(session_row)
    await revoke_session(ctx.redis, str(session_row.id))


async def refresh(
    session: AsyncSession, ctx: AuthContext, token: str, client: Client
) -> TokenResponse:
    digest = token_hash(token)
    moment = utcnow()
    # Spend the token atomically: of two concurrent uses, exactly one gets the row.
    spent = await session.exec(
        update(RefreshToken)
        .where(col(RefreshToken.token_hash) == digest, col(RefreshToken.used_at).is_(None))
        .values(used_at=moment)
        .returning(col(RefreshToken.session_id), col(RefreshToken.expires_at))
    )
    claimed = spent.first()
    if claimed is None:
        await _refresh_refused(session, ctx, digest)
        raise invalid_refresh()  # unreachable: _refresh_refused always raises
    session_id, expires_at = claimed
    session_row = await session.get(Session, session_id)
    account = await session.get(Account, session_row.account_id) if session_row else None
    if session_row is None or account is None or session_row.revoked_at is not None:
        metrics.TOKEN_REFRESHES.labels("invalid").inc()
        raise invalid_refresh()
    if expires_at <= moment:
        metrics.TOKEN_REFRESHES.labels("expired").inc()
        raise INVALID_REFRESH_TOKEN("The refresh token has expired.")
    if account.status != ACTIVE:
        metrics.TOKEN_REFRESHES.labels("invalid").inc()
        raise problems.ACCOUNT_DISABLED("This account is disabled.")
    if client.user_agent:
        session_row.user_agent = client.user_agent[:512]
    session_row.ip = client.ip[:64]
    tokens = await _tokens_for(session, ctx, account, session_row)
    metrics.TOKEN_REFRESHES.labels("success").inc()
    return tokens


async def _refresh_refused(session: AsyncSession, ctx: AuthContext, digest: str) -> None:
    known = (
        await session.exec(select(RefreshToken).where(RefreshToken.token_hash == digest))
    ).first()
    if known is None:
        metrics.TOKEN_REFRESHES.labels("invalid").inc()
        raise invalid_refresh()
    # A spent token came back: it was stolen or replayed. Kill the whole family.
    session_row = await session.get(Session, known.session_id)
    if session_row is not None:
        if session_row.revoked_at is None:
            session_row.revoked_at = utcnow()
            session_row.revoke_reason = "reuse"
            session.add(session_row)
        # Durable first: the revocation must survive the error response and a Redis
        # outage (the refresh tokens die with the row). Redis then kills the access
        # tokens; if it is down the client gets a 503, and its retry lands here again.
        await session.commit()
        security_log.warning(
            "refresh token reuse detected; session revoked",
            extra={
                "event": "refresh_token_reuse",
                "session_id": str(session_row.id),
                "user_id": str(session_row.account_id),
            },
        )
        await revoke_session(ctx.redis, str(session_row.id))
    metrics.TOKEN_REFRESHES.labels("reuse_detected").inc()
    metrics.REFRESH_REUSE.inc()
    raise invalid_refresh()


async def logout(session: AsyncSession, ctx: AuthContext, principal: Principal) -> None:
    row = await _own_session(session, principal, principal.session_id)
    if row is not None:
        await _revoke_family(session, ctx, row, "logout")
    else:
        await revoke_session(ctx.redis, principal.session_id)


async def logout_all(session: AsyncSession, ctx: AuthContext, principal: Principal) -> None:
    account = await account_by_id(session, principal.user_id)
    if account is not None:
        await revoke_all_sessions(session, account.id, "logout_all")
    await revoke_user_tokens(ctx.redis, principal.user_id, at=time.time())


async def _own_session(
    session: AsyncSession, principal: Principal, session_id: str | uuid.UUID
) -> Session | None:
    try:
        sid = session_id if isinstance(session_id, uuid.UUID) else uuid.UUID(session_id)
        owner = uuid.UUID(principal.user_id)
    except ValueError:
        return None
    row = await session.get(Session, sid)
    return row if row is not None and row.account_id == owner else None


async def list_sessions(
    session: AsyncSession, principal: Principal, limit: int = 100
) -> list[SessionOut]:
    try:
        owner = uuid.UUID(principal.user_id)
    except ValueError:
        return []
    rows = await session.exec(
        select(Session)
        .where(
            Session.account_id == owner,
            col(Session.revoked_at).is_(None),
            Session.expires_at > utcnow(),
        )
        .order_by(col(Session.last_used_at).desc(), col(Session.id))
        .limit(limit)
    )
    return [
        SessionOut(
            id=r.id,
            created_at=r.created_at,
            last_used_at=r.last_used_at,
            expires_at=r.expires_at,
            user_agent=r.user_agent,
            ip=r.ip,
            current=str(r.id) == principal.session_id,
        )
        for r in rows
    ]


async def delete_session(
    session: AsyncSession, ctx: AuthContext, principal: Principal, session_id: uuid.UUID
) -> None:
    row = await _own_session(session, principal, session_id)
    if row is None or row.revoked_at is not None:
        # Someone else's session and a missing one look the same.
        raise problems.not_found("session")
    await _revoke_family(session, ctx, row, "deleted")
