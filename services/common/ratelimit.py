"""Fixed-window rate limits in Redis: what the gateway's and auth's limiters share.

One Lua script counts hits atomically (INCRBY + PEXPIRE + PTTL: one round trip; ARGV[2],
the number of hits, defaults to 1); keys hold a hash of the subject (an IP, a user id,
an email), never the subject itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from limits import parse

FIXED_WINDOW_HIT = """
local hits = tonumber(ARGV[2] or 1)
local n = redis.call('INCRBY', KEYS[1], hits)
if n == hits then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
return {n, ttl}
"""


def subject_key(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Limit:
    name: str  # also the `limit` label of rate_limit_rejections_total
    amount: int
    window_seconds: int

    @classmethod
    def parse(cls, name: str, spec: str) -> Limit:
        """From the `limits` notation: "30/minute", "10/hour"..."""
        item = parse(spec)
        return cls(name, item.amount, item.get_expiry())

    def key(self, prefix: str, subject: str) -> str:
        # The spec is in the key: a changed limit starts with fresh counters.
        return f"{prefix}:{self.name}:{self.amount}/{self.window_seconds}:{subject_key(subject)}"
