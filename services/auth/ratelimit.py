"""Rate limits and login lockout in Redis, shared by every worker and replica.

Fixed windows: services.common.ratelimit.
Lockout: consecutive failures per account; past a threshold every failure locks
the account for an exponentially growing time, capped so that an attacker cannot
keep a victim out for long. Keys hold hashes of emails, never the emails.
"""

from __future__ import annotations

import math

import redis.asyncio as aioredis

from services.common.ratelimit import FIXED_WINDOW_HIT, Limit, subject_key

__all__ = ["Limit", "Lockout", "RateLimiter"]

FAILURE_MEMORY_SECONDS = 24 * 3600  # failures are forgotten a day after the last one


class RateLimiter:
    def __init__(self, redis: aioredis.Redis, prefix: str = "rl:auth") -> None:
        self._redis = redis
        self._prefix = prefix
        self._script = redis.register_script(FIXED_WINDOW_HIT)

    async def hit(self, limit: Limit, subject: str) -> int | None:
        """Count one hit; None if allowed, else the seconds until the window resets."""
        key = limit.key(self._prefix, subject)
        count, ttl_ms = await self._script(keys=[key], args=[limit.window_seconds * 1000])
        if int(count) <= limit.amount:
            return None
        return max(1, math.ceil(int(ttl_ms) / 1000))


class Lockout:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        threshold: int,
        base_seconds: int,
        max_seconds: int,
        prefix: str = "lock:auth",
    ) -> None:
        self._redis = redis
        self.threshold = threshold
        self.base_seconds = base_seconds
        self.max_seconds = max_seconds
        self._prefix = prefix

    def _keys(self, account: str) -> tuple[str, str]:
        subject = subject_key(account)
        return f"{self._prefix}:fails:{subject}", f"{self._prefix}:until:{subject}"

    async def retry_after(self, account: str) -> int | None:
        _, until = self._keys(account)
        ttl_ms = int(await self._redis.pttl(until))
        return math.ceil(ttl_ms / 1000) if ttl_ms > 0 else None

    def backoff(self, failures: int) -> int:
        if failures < self.threshold:
            return 0
        exponent = min(failures - self.threshold, 30)  # bounded: no huge integers
        return int(min(self.base_seconds * 2**exponent, self.max_seconds))

    async def failed(self, account: str) -> int:
        """Record a failure; returns the lockout it caused in seconds (0: none)."""
        fails, until = self._keys(account)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(fails)
            pipe.expire(fails, FAILURE_MEMORY_SECONDS)
            count, _ = await pipe.execute()
        seconds = self.backoff(int(count))
        if seconds:
            await self._redis.set(until, b"1", ex=seconds)
        return seconds

    async def succeeded(self, account: str) -> None:
        await self._redis.delete(*self._keys(account))
