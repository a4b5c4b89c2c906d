"""FastAPI dependencies that turn a bearer token into a verified, non-revoked Principal.

Every service checks tokens itself (defence in depth behind the gateway) and
checks the object it touches against the principal (authorization per object).
"""

from __future__ import annotations

import logging
from typing import Annotated

import redis.asyncio as aioredis
from fastapi import Depends, Request

from services.common import problems
from services.common.context import user_id_var
from services.common.jwt import InvalidToken, KeysUnavailable, Principal, TokenVerifier
from services.common.redis import REDIS_ERRORS
from services.common.revocation import is_revoked

log = logging.getLogger("services.security")


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value; None for any other."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authenticate_token(
    verifier: TokenVerifier, redis: aioredis.Redis, token: str
) -> Principal:
    """The verified, non-revoked principal of a token, for the services and the gateway.

    Raises ProblemError 401 (invalid or revoked) or 503 (revocations unknowable)."""
    try:
        principal = await verifier.verify(token)
    except InvalidToken as exc:
        raise problems.unauthorized(str(exc)) from exc
    except KeysUnavailable as exc:
        # A cold key cache (a new worker) while the JWKS cannot be fetched.
        log.warning("signing keys unavailable for kid %s", exc)
        raise problems.unavailable("Authentication is temporarily unavailable.", 2) from exc
    try:
        revoked = await is_revoked(redis, principal)
    except REDIS_ERRORS as exc:
        # Fail closed: a logout or a deactivation must never be skipped.
        log.error("revocation check unavailable: %s", type(exc).__name__)
        raise problems.unavailable("Authentication is temporarily unavailable.", 2) from exc
    if revoked:
        raise problems.unauthorized("token has been revoked")
    user_id_var.set(principal.user_id)
    return principal


async def authenticate(request: Request, token: str) -> Principal:
    state = request.app.state
    return await authenticate_token(state.token_verifier, state.redis, token)


async def get_principal(request: Request) -> Principal:
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise problems.unauthorized("A bearer access token is required.", error=None)
    return await authenticate(request, token)


async def get_optional_principal(request: Request) -> Principal | None:
    token = bearer_token(request.headers.get("authorization"))
    return None if token is None else await authenticate(request, token)


async def require_admin(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    if not principal.is_admin:
        raise problems.FORBIDDEN("This action needs the admin role.")
    return principal


CurrentUser = Annotated[Principal, Depends(get_principal)]
OptionalUser = Annotated[Principal | None, Depends(get_optional_principal)]
AdminUser = Annotated[Principal, Depends(require_admin)]
