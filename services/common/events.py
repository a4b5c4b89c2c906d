"""Domain events on Redis Streams: one stream per topic, trimmed to a bounded length.

Every event is signed by its producer (HMAC-SHA256 over the canonical fields, with the
producer's key) and consumers check the signature against the producer the topic
belongs to: write access to Redis alone cannot make anyone an admin.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping

import redis.asyncio as aioredis

from services.common.outbox import OutboxBase
from services.common.settings import CommonSettings

STREAM_PREFIX = "events:"
STREAM_MAXLEN = 100_000  # approximate trim: Redis never grows without bound

# Which services may publish each topic (docs/conventions.md): a consumer believes a
# topic only when it is signed with one of those services' keys. A role changes in users
# (the admin API) or in auth (`manage promote`): both publish it.
TOPIC_PRODUCERS: dict[str, frozenset[str]] = {
    "user.registered": frozenset({"auth"}),
    "user.email_verified": frozenset({"auth"}),
    "user.deactivated": frozenset({"users"}),
    "user.reactivated": frozenset({"users"}),
    "user.role_changed": frozenset({"users", "auth"}),
    "user.deleted": frozenset({"users"}),
    "product.created": frozenset({"catalog"}),
    "product.updated": frozenset({"catalog"}),
    "product.deleted": frozenset({"catalog"}),
}
SIGNED_FIELDS = ("id", "topic", "data", "request_id", "created_at")


def stream_name(topic: str) -> str:
    return STREAM_PREFIX + topic


def signing_key(settings: CommonSettings, producer: str) -> bytes:
    """The producer's key: its EVENT_SIGNING_KEYS entry, else derived from CURSOR_SECRET
    (never stored in Redis, so a Redis writer cannot sign)."""
    configured = settings.event_signing_keys.get(producer)
    secret = configured.get_secret_value() if configured else settings.cursor_secret
    label = b"shopstack event signing key:" + producer.encode()
    return hmac.new(secret.encode(), label, hashlib.sha256).digest()


def signature(key: bytes, fields: Mapping[str, str]) -> str:
    # A JSON list: unambiguous, whatever the values contain.
    canonical = json.dumps([fields.get(name, "") for name in SIGNED_FIELDS], separators=(",", ":"))
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


class EventVerifier:
    """Checks an entry's signature against the keys of the topic's producers."""

    def __init__(self, settings: CommonSettings) -> None:
        producers = set().union(*TOPIC_PRODUCERS.values())
        self._keys = {p: signing_key(settings, p) for p in producers}

    def verify(self, topic: str, fields: Mapping[str, str]) -> bool:
        """`topic` is the stream's: an entry naming another topic is refused too."""
        producers = TOPIC_PRODUCERS.get(topic, frozenset())
        if fields.get("topic") != topic:
            return False
        sent = fields.get("sig", "")
        # Every allowed producer's key is tried (no early exit), each compare constant-time.
        matches = [
            hmac.compare_digest(sent, signature(self._keys[p], fields)) for p in sorted(producers)
        ]
        return any(matches)


async def publish_event(redis: aioredis.Redis, row: OutboxBase, key: bytes | None = None) -> None:
    """XADD the outbox row, signed with `key` (the producer's); its id travels with it so
    consumers can drop redeliveries."""
    fields = {
        "id": str(row.id),
        "topic": row.topic,
        "data": json.dumps(row.payload, separators=(",", ":"), default=str),
        "request_id": row.request_id or "",
        "created_at": row.created_at.isoformat(),
    }
    if key is not None:
        fields["sig"] = signature(key, fields)
    await redis.xadd(
        stream_name(row.topic),
        fields,  # type: ignore[arg-type]
        maxlen=STREAM_MAXLEN,
        approximate=True,
    )
