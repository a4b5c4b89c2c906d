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
from services.common.leanredis import LeanRedis
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
        fast: LeanRedis | None = None,
    ) -> None:
        self.redis = redis
        # Reads (GET, MGET) go over the lean connection when there is one: they are the
        # hot path of a cached read. Writes, locks and pipelines stay on redis-py.
        self.fast = fast
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
        raw = await self._call(self._get(self._version_key(namespace)))
        return int(raw) if raw else 0

    async def bump(self, namespace: str) -> None:
        await self._call(self.redis.incr(self._version_key(namespace)))

    async def delete(self, *keys: str) -> None:
        if keys:
            await self._call(self.redis.delete(*keys))

    async def get(self, key: str) -> bytes | None:
        value = await self._call(self._get(key))
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl: int | None = None) -> None:
        await self._call(self.redis.set(key, value, ex=ttl or self.ttl))

    async def get_or_load(
        self, key: str, loader: Loader, ttl: int | None = None, *, known_miss: bool = False
    ) -> bytes | None:
        """Return the cached value or load, store and return it; None means "not found".

        `known_miss`: the caller has just looked the key up itself and found nothing,
        so the first GET is skipped (one Redis round trip less on a miss).
        """
        if not known_miss:
            cached = await self.get(key)
            if cached is not None:
                metrics.CACHE_REQUESTS.labels(self.name, "hit").inc()
                return None if cached == MISSING else cached
        metrics.CACHE_REQUESTS.labels(self.name, "miss" if self.guard.available else "error").inc()
        return await self._single_flight(key, key, loader, ttl, _plain, bytes)

    async def get_or_load_versioned(
        self, namespace: str, key: str, loader: Loader, ttl: int | None = None
    ) -> bytes | None:
        """get_or_load for a key invalidated by `bump(namespace)`, in one round trip.

        The entry carries the namespace version it was loaded under, and one MGET reads
        it together with the current version: an entry from before the last bump is a
        miss (what `key(version(namespace), ...)` gives with two round trips).
        """
        version, value = await self.get_versioned(namespace, key)
        if value is not None:
            metrics.CACHE_REQUESTS.labels(self.name, "hit").inc()
            return None if value == MISSING else value
        metrics.CACHE_REQUESTS.labels(self.name, "miss" if self.guard.available else "error").inc()
        prefix = b"%d\n" % version
        return await self._single_flight(
            f"{key}@{version}",
            key,
            loader,
            ttl,
            lambda cached: _unversion(cached, version),
            lambda value: prefix + value,
        )

    async def get_versioned(self, namespace: str, key: str) -> tuple[int, bytes | None]:
        """The namespace's current version and the key's value if it was stored under it
        (None: absent, stale or Redis down). One MGET; no metrics, no load."""
        values = await self._call(self._mget(self._version_key(namespace), key))
        if values is None:
            return 0, None
        version = int(values[0] or 0)
        return version, _unversion(values[1], version)

    async def _single_flight(
        self,
        flight: str,
        key: str,
        loader: Loader,
        ttl: int | None,
        decode: Callable[[bytes | None], bytes | None],
        encode: Callable[[bytes], bytes],
    ) -> bytes | None:
        # Single flight inside this process, then a short Redis lock across processes.
        pending = self._inflight.get(flight)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._inflight[flight] = future
        try:
            value = await self._load_once(key, loader, ttl, decode, encode)
            future.set_result(value)
            return value
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._inflight[flight]

    async def _load_once(
        self,
        key: str,
        loader: Loader,
        ttl: int | None,
        decode: Callable[[bytes | None], bytes | None],
        encode: Callable[[bytes], bytes],
    ) -> bytes | None:
        lock_key = f"lock:{key}"
        got_lock = await self._call(self.redis.set(lock_key, b"1", nx=True, px=self.lock_ttl_ms))
        if not got_lock and self.guard.available:
            # Someone else is loading: wait briefly for their value instead of piling on.
            for _ in range(int(self.lock_ttl_ms / 1000 / self.wait_step)):
                await asyncio.sleep(self.wait_step)
                cached = decode(await self.get(key))
                if cached is not None:
                    return None if cached == MISSING else cached
                if not self.guard.available:
                    break
        released = False
        try:
            value = await loader()
            stored = encode(MISSING if value is None else value)
            if got_lock:
                # Store and release in one round trip (no MULTI needed: the lock only
                # keeps the herd waiting, its TTL covers a crash in between).
                pipe = self.redis.pipeline(transaction=False)
                pipe.set(key, stored, ex=ttl or self.ttl)
                pipe.delete(lock_key)
                released = await self._call(pipe.execute()) is not None
            else:
                await self.set(key, stored, ttl)
            return value
        finally:
            if got_lock and not released:
                await self._call(self.redis.delete(lock_key))

    # Plain functions returning the client's awaitable: no extra coroutine per hot read.
    def _get(self, key: str) -> Awaitable[Any]:
        return self.fast.get(key) if self.fast else self.redis.get(key)

    def _mget(self, *keys: str) -> Awaitable[Any]:
        return self.fast.call(b"MGET", *keys) if self.fast else self.redis.mget(*keys)

    def _version_key(self, namespace: str) -> str:
        return f"ver:{self.name}:{namespace}"

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


def _plain(value: bytes | None) -> bytes | None:
    return value


def _unversion(entry: bytes | None, version: int) -> bytes | None:
    """The value of a versioned entry (`b"<version>\\n" + value`) if it is current."""
    if not isinstance(entry, bytes):
        return None
    tag, sep, value = entry.partition(b"\n")
    return value if sep and tag == b"%d" % version else None


def _close(awaitable: Awaitable[Any]) -> None:
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=str).encode()
