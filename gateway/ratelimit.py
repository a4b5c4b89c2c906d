"""Rate limits in Redis, shared by every worker and every gateway replica.

Fixed windows counted by one atomic Lua script (INCRBY + PEXPIRE + PTTL: one round trip).
Credential endpoints get a tighter per-IP limit, authenticated traffic a per-user
limit, anonymous traffic a per-IP limit.

Leased counts: a worker counts a subject's first request of a window alone (exact for a
light client), then takes the next hits in blocks from Redis - twice the last block, at
most LEASE_MAX and at most 1/LEASE_SHARE of what the window has left - and spends them
locally, so a busy subject costs one round trip per block instead of one per request.
Redis grants a block only up to the limit, so a window never admits more than the limit
across every worker and replica; what a worker leased and did not spend is lost to that
subject for the window (a busy client may be refused a few requests early), and the
shrinking blocks keep that small near the limit (docs/gateway.md, *Rate limits*).

Redis down: fail OPEN (the request goes through unlimited), with a log line and the
gateway_rate_limit_unavailable_total metric, and Redis is skipped for a short cooldown
so requests do not each wait for a socket timeout. Authentication fails closed anyway
(revocation checks), so an outage cannot open protected routes.
"""

from __future__ import annotations

import asyncio
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
LEASE_MAX = 32  # the largest block of hits one worker takes at once
LEASE_SHARE = 16  # a block is at most this fraction of what the window has left
MAX_SUBJECTS = 10_000  # subjects remembered per worker (bounded under a distributed flood)


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


@dataclass(slots=True)
class _Lease:
    """One subject's hits under one limit, as this worker knows them for one window."""

    key: str
    until: float = 0.0  # the window's end (monotonic); nothing below holds after it
    tokens: int = 0  # hits leased from Redis and not yet spent here
    block: int = 0  # the last block asked for (the next asks twice as many)
    left: int = 0  # what the window had left in Redis after the last block
    asking: asyncio.Event | None = None  # set when the block in flight has come back


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
        # Per (limit, subject): its key (a sha256 and an f-string per request otherwise)
        # and its lease. A subject refused in this window is refused here until the
        # window resets: a flood from one client costs no Redis round trips.
        self._leases: dict[tuple[Limit, str], _Lease] = {}
        for limit in (anonymous, user, auth):  # series at 0 from the start, for rate()
            RATE_LIMITED.labels(limit.name)
        self.anonymous = anonymous
        self.user = user
        self.auth = auth
        self._prefix = prefix
        self._guard = guard or RedisGuard(cooldown=2.0)

    async def close(self) -> None:
        if self._lean is not None:
            await self._lean.close()

    async def _count(self, key: str, window_ms: int, hits: int = 1) -> tuple[int, int]:
        """(count in the window after adding `hits`, milliseconds left in it): one
        script, one round trip."""
        if self._lean is not None:
            reply = await self._lean.eval(_SCRIPT, key, window_ms, hits)
        else:
            reply = await self._redis.eval(FIXED_WINDOW_HIT, 1, key, window_ms, hits)
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

    def _lease(self, limit: Limit, subject: str) -> _Lease:
        lease = self._leases.get((limit, subject))
        if lease is None:
            if len(self._leases) >= MAX_SUBJECTS:
                self._leases.clear()
            lease = self._leases[(limit, subject)] = _Lease(limit.key(self._prefix, subject))
        return lease

    async def hit(self, limit: Limit, subject: str) -> Decision | None:
        """Count one request; None when Redis cannot count it (fail open)."""
        lease = self._lease(limit, subject)
        while True:
            if not self._guard.available:
                metrics.RATE_LIMIT_UNAVAILABLE.inc()
                return None
            now = time.monotonic()
            if lease.until > now:
                if lease.tokens > 0:  # spent locally: no round trip
                    lease.tokens -= 1
                    left = lease.until - now
                    return Decision(True, limit, lease.left + lease.tokens, _seconds(left))
                if lease.left == 0:  # refused in this window already: no round trip either
                    RATE_LIMITED.labels(limit.name).inc()
                    return Decision(False, limit, 0, _seconds(lease.until - now))
            if lease.asking is None:
                break
            # One block in flight per subject and worker: concurrent requests wait for it
            # instead of each leasing a block (and stranding most of it).
            await lease.asking.wait()
        if lease.until > now:
            ask = max(1, min(LEASE_MAX, 2 * lease.block, lease.left // LEASE_SHARE))
        else:  # a new window: what was leased in the old one is gone
            ask, lease.tokens = 1, 0
        asking = lease.asking = asyncio.Event()
        try:
            return await self._take(lease, limit, ask)
        finally:
            lease.asking = None
            asking.set()

    async def _take(self, lease: _Lease, limit: Limit, ask: int) -> Decision | None:
        """Ask Redis for a block of `ask` hits; spend one on this request."""
        window_ms = limit.window_seconds * 1000
        try:
            count, ttl = await self._count(lease.key, window_ms, ask)
        except REDIS_ERRORS as exc:
            self._guard.failed(exc)  # logs once per cooldown, not per request
            metrics.RATE_LIMIT_UNAVAILABLE.inc()
            return None
        self._guard.succeeded()
        # What Redis granted: the part of this block still under the limit.
        granted = max(0, min(ask, limit.amount - (count - ask)))
        left_s = (ttl if ttl > 0 else window_ms) / 1000
        lease.until = time.monotonic() + left_s
        lease.block = ask
        lease.left = max(0, limit.amount - count)
        if granted == 0:
            RATE_LIMITED.labels(limit.name).inc()
            return Decision(False, limit, 0, _seconds(left_s))
        lease.tokens += granted - 1  # one is this request's
        return Decision(True, limit, lease.left + lease.tokens, _seconds(left_s))


def _seconds(left: float) -> int:
    return max(1, math.ceil(left))
