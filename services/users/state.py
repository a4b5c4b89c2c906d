"""The users service's per-process objects, built at startup (services.common.state)."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.cache import Cache
from services.common.leanredis import LeanRedis


@dataclass
class UsersState:
    profile_cache: Cache
    cache_reads: LeanRedis | None  # the cache's pipelined GET connection, if any
