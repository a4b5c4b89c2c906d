"""Cache-aside over Redis: TTLs, versioned namespaces, stampede protection, outage fallback.

Values are bytes (usually the JSON a handler returns) so a hit costs one GET and no
model round trip. When Redis fails, every call falls through to the loader.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from services.common import metrics
from services.common.redis import REDIS_ERRORS, RedisGuard

Loader = Callable[[], Awaitable[bytes | None]]
MISSING = b"\x00missing"  # cached "not found", so a hot 404 does not hit the database


class Cache:
    """One named cache (metrics label) over a shared Redis client."""

    def __init__(
        self,
        redis: aioredis.Redis,
        name: str,
        *,
        ttl: int = 300,
        guard: RedisGuard | None = None,
        lock_ttl_ms: int = 3000,
        wait_step: float = 0.01,
    ) -> None:
        self.redis = redis
        self.name = name
        self.ttl = ttl
        self.guard = guard or RedisGuard()
        self.lock_ttl_ms = lock_ttl_ms
        self.wait_step = wait_step
        self._inflight: dict[str, asyncio.Future[bytes | None]] = {}

    def key(self, *parts: object) -> str:
        return ":".join(["cache", self.name, *(str(p) for p in parts)])

    async def version(self, namespace: str) -> int:
        """Current version of a namespace; bump it to invalidate every key built on it."""
        raw = await self._call(self.redis.get(f"ver:{self.name}:{namespace}"))
        return int(raw) if raw else 0

    async def bump(self, namespace: str) -> None:
        await self._call(self.redis.incr(f"ver:{self.name}:{namespace}"))

    async def delete(self, *keys: str) -> None:
        if keys:
            await self._call(self.redis.delete(*keys))

    async def get(self, key: str) -> bytes | None:
        value = await self._call(self.redis.get(key))
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl: int | None = None) -> None:
        await self._call(self.redis.set(key, value, ex=ttl or self.ttl))

    async def get_or_load(self, key: str, loader: Loader, ttl: int | None = None) -> bytes | None:
        """Return the cached value or load, store and return it; None means "not found"."""
        cached = await self.get(key)
        if cached is not None:
            metrics.CACHE_REQUESTS.labels(self.name, "hit").inc()
            return None if cached == MISSING else cached
        metrics.CACHE_REQUESTS.labels(self.name, "miss" if self.guard.available else "error").inc()
        # Single flight inside this process, then a short Redis lock across processes.
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await self._load_once(key, loader, ttl)
            future.set_result(value)
            return value
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._inflight[key]

    async def _load_once(self, key: str, loader: Loader, ttl: int | None) -> bytes | None:
        lock_key = f"lock:{key}"
        got_lock = await self._call(self.redis.set(lock_key, b"1", nx=True, px=self.lock_ttl_ms))
        if not got_lock and self.guard.available:
            # Someone else is loading: wait briefly for their value instead of piling on.
            for _ in range(int(self.lock_ttl_ms / 1000 / self.wait_step)):
                await asyncio.sleep(self.wait_step)
                cached = await self.get(key)
                if cached is not None:
                    return None if cached == MISSING else cached
                if not self.guard.available:
                    break
        try:
            value = await loader()
            await self.set(key, MISSING if value is None else value, ttl)
            return value
        finally:
            if got_lock:
                await self._call(self.redis.delete(lock_key))

    async def _call(self, awaitable: Awaitable[Any]) -> Any:
        if not self.guard.available:
            _close(awaitable)
            return None
        try:
            result = await awaitable
        except REDIS_ERRORS as exc:
            self.guard.failed(exc)
            return None
        self.guard.succeeded()
        return result


def _close(awaitable: Awaitable[Any]) -> None:
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=str).encode()
