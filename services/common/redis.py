"""The Redis client and a per-process guard that skips Redis for a moment after it fails.

Without the guard every request would wait for a socket timeout while Redis is down.
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

log = logging.getLogger("services.redis")


def create_redis(url: str, timeout: float = 0.5) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
        max_connections=200,
        # After a Redis restart every pooled connection is dead, and without a retry
        # each one failed one request ("Connection closed by server", a 503). One
        # immediate retry on a fresh connection; not on timeouts (latency would double).
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )


def blocking_reader(client: aioredis.Redis, block_seconds: float) -> aioredis.Redis:
    """A client for blocking reads (XREADGROUP BLOCK): `client`'s server and options, with
    a socket timeout that covers the block. On the shared client a blocking read must
    race its short timeout, and on a busy host it loses: every poll then fails and backs
    off, and events wait seconds. Its own small pool: a blocked read holds a connection.
    """
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    kwargs["socket_timeout"] = block_seconds + max(float(kwargs.get("socket_timeout") or 0), 1.0)
    return aioredis.Redis(
        connection_pool=aioredis.ConnectionPool(
            connection_class=pool.connection_class, max_connections=4, **kwargs
        )
    )


class RedisGuard:
    """Circuit breaker for optional Redis work (caches): open for `cooldown` s after an error."""

    def __init__(self, cooldown: float = 2.0) -> None:
        self.cooldown = cooldown
        self._open_until = 0.0

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._open_until

    def failed(self, exc: BaseException) -> None:
        if self.available:
            log.warning(
                "redis unavailable, skipping it for %.1fs: %s", self.cooldown, type(exc).__name__
            )
        self._open_until = time.monotonic() + self.cooldown

    def succeeded(self) -> None:
        self._open_until = 0.0


REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
