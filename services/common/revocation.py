"""Access-token revocation in Redis, written by auth and users, read on every request.

Two keys, each living only as long as the tokens it can affect:
- `revoked:sid:<session>`: that session's tokens are dead (logout);
- `revoked:user:<user>` = unix time with ms (tokens carry a fractional `iat`): tokens
  issued at or before it are dead
  (logout-everywhere, password reset, deactivation, role change).
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.common.jwt import Principal

# Longer than any access token can live (15 min + leeway), so a revocation outlives them.
REVOCATION_TTL_SECONDS = 3600


def _sid_key(session_id: str) -> str:
    return f"revoked:sid:{session_id}"


def _user_key(user_id: str) -> str:
    return f"revoked:user:{user_id}"


async def revoke_session(redis: aioredis.Redis, session_id: str) -> None:
    await redis.set(_sid_key(session_id), b"1", ex=REVOCATION_TTL_SECONDS)


async def revoke_user_tokens(redis: aioredis.Redis, user_id: str, at: float | None = None) -> None:
    """Reject every token of the user issued up to now (`at`)."""
    when = at if at is not None else time.time()
    await redis.set(_user_key(user_id), f"{when:.3f}", ex=REVOCATION_TTL_SECONDS)


async def is_revoked(redis: aioredis.Redis, principal: Principal) -> bool:
    """Raises on Redis errors: callers fail closed (503), a revocation is never skipped.

    A read that times out is tried once more: on a busy host a single slow socket read
    is common, and failing closed on it would turn a hiccup into a 503.
    """
    keys = (_sid_key(principal.session_id), _user_key(principal.user_id))
    try:
        sid_flag, revoked_before = await redis.mget(*keys)
    except (TimeoutError, RedisTimeoutError):
        sid_flag, revoked_before = await redis.mget(*keys)
    if sid_flag is not None:
        return True
    return revoked_before is not None and principal.issued_at <= float(revoked_before)
