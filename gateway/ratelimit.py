"""Rate limits in Redis, shared by every worker and every gateway replica.

Fixed windows counted by one atomic Lua script (INCR + PEXPIRE + PTTL: one round trip).
Credential endpoints get a tighter per-IP limit, authenticated traffic a per-user
limit, anonymous traffic a per-IP limit.

Redis down: fail OPEN (the request goes through unlimited), with a log line and the
gateway_rate_limit_unavailable_total metric, and Redis is skipped for a short cooldown
so requests do not each wait for a socket timeout. Authentication fails closed anyway
(revocation checks), so an outage cannot open protected routes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from gateway import metrics
from services.common.leanredis import LeanRedis
from services.common.metrics import RATE_LIMITED
from services.common.ratelimit import FIXED_WINDOW_HIT, Limit
from services.common.redis import REDIS_ERRORS, RedisGuard

__all__ = ["CLIENT_NAME", "Decision", "Limit", "RateLimiter"]

CLIENT_NAME = "gateway-ratelimit"  # the lean connection's name in CLIENT LIST
_SCRIPT = FIXED_WINDOW_HIT.encode()


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: Limit
    remaining: int
    reset_seconds: int

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"ratelimit-limit", str(self.limit.amount).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(self.reset_seconds).encode()),
        ]


class RateLimiter:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        anonymous: Limit,
        user: Limit,
        auth: Limit,
        prefix: str = "rl:gw",
        guard: RedisGuard | None = None,
    ) -> None:
        # The one fast path (services/common/leanredis.py, REDIS_LEAN), else redis-py.
        self._redis = redis
        self._lean = LeanRedis.for_client(redis, client_name=CLIENT_NAME)
        # Keys per (limit, subject): a sha256 and an f-string per request otherwise.
        self._keys: dict[tuple[Limit, str], str] = {}
        for limit in (anonymous, user, auth):  # series at 0 from the start, for rate()
            RATE_LIMITED.labels(limit.name)
        self.anonymous = anonymous
        self.user = user
        self.auth = auth
        self._prefix = prefix
        self._guard = guard or RedisGuard(cooldown=2.0)
        # Subjects already over their limit, refused locally until the window resets:
        # a flood from one client costs no Redis round trips.
        self._blocked: dict[str, float] = {}

    async def close(self) -> None:
        if self._lean is not None:
            await self._lean.close()

    async def _count(self, key: str, window_ms: int) -> tuple[int, int]:
        """(count in the window, milliseconds left in it): one script, one round trip."""
        if self._lean is not None:
            reply = await self._lean.eval(_SCRIPT, key, window_ms)
        else:
            reply = await self._redis.eval(FIXED_WINDOW_HIT, 1, key, window_ms)
        if (
            not isinstance(reply, list)
            or len(reply) != 2
            or not all(isinstance(n, int) for n in reply)
        ):
            raise ResponseError(f"unexpected script reply {reply!r}")
        return reply[0], reply[1]

    def choose(self, *, sensitive: bool, user_id: str | None, ip: str) -> tuple[Limit, str]:
        if sensitive:
            return self.auth, ip
        if user_id is not None:
            return self.user, user_id
        return self.anonymous, ip

    async def hit(self, limit: Limit, subject: str) -> Decision | None:
        """Count one request; None when Redis cannot count it (fail open)."""
        if not self._guard.available:
            metrics.RATE_LIMIT_UNAVAILABLE.inc()
            return None
        key = self._keys.get((limit, subject))
        if key is None:
            if len(self._keys) > 10_000:  # bounded, like _blocked
                self._keys.clear()
            key = self._keys[(limit, subject)] = limit.key(self._prefix, subject)
        until = self._blocked.get(key)
        if until is not None:
            left = until - time.monotonic()
            if left > 0:
                RATE_LIMITED.labels(limit.name).inc()
                return Decision(False, limit, 0, max(1, math.ceil(left)))
            del self._blocked[key]
        try:
            count, ttl = await self._count(key, limit.window_seconds * 1000)
        except REDIS_ERRORS as exc:
            self._guard.failed(exc)  # logs once per cooldown, not per request
            metrics.RATE_LIMIT_UNAVAILABLE.inc()
            return None
        self._guard.succeeded()
        reset = max(1, math.ceil((ttl if ttl > 0 else limit.window_seconds * 1000) / 1000))
        allowed = count <= limit.amount
        decision = Decision(allowed, limit, max(0, limit.amount - count), reset)
        if not allowed:
            RATE_LIMITED.labels(limit.name).inc()
            if len(self._blocked) > 10_000:  # bounded memory under a distributed flood
                self._blocked.clear()
            self._blocked[key] = time.monotonic() + (ttl / 1000 if ttl > 0 else reset)
        return decision
