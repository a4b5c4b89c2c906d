"""The gateway's rate-limit counter: one Lua script per request over the lean Redis
connection (services/common/leanredis.py).

EVAL (not EVALSHA): a Redis restarted or flushed cannot answer NOSCRIPT, and Redis
caches the compiled script by its hash anyway.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from services.common.leanredis import LeanRedis

CLIENT_NAME = "gateway-ratelimit"


class RedisCounter(LeanRedis):
    """Runs one Lua script over a single pipelined connection."""

    def __init__(self, host: str, port: int, *, script: str, **options: Any) -> None:
        super().__init__(host, port, client_name=CLIENT_NAME, **options)
        self._script = script.encode()

    @classmethod
    def for_script(cls, redis: aioredis.Redis, script: str) -> RedisCounter | None:
        """None when redis-py's client is not a plain TCP connection (TLS, unix socket)."""
        options = cls.options_of(redis)
        return None if options is None else cls(**options, script=script)

    async def hit(self, key: str, arg: int) -> tuple[int, int]:
        """The script's two integers for KEYS[1]=key, ARGV[1]=arg."""
        reply = await self.call(b"EVAL", self._script, b"1", key, arg)
        if (
            not isinstance(reply, list)
            or len(reply) != 2
            or not all(isinstance(n, int) for n in reply)
        ):
            raise ResponseError(f"unexpected script reply {reply!r}")
        return reply[0], reply[1]
