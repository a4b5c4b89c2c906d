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

# Which service may publish each topic (docs/conventions.md): a consumer believes a
# topic only when it is signed with that service's key.
TOPIC_PRODUCERS: dict[str, str] = {
    "user.registered": "auth",
    "user.email_verified": "auth",
    "user.deactivated": "users",
    "user.reactivated": "users",
    "user.role_changed": "users",
    "user.deleted": "users",
    "product.created": "catalog",
    "product.updated": "catalog",
    "product.deleted": "catalog",
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
    """Checks an entry's signature against the key of the topic's producer."""

    def __init__(self, settings: CommonSettings) -> None:
        self._keys = {p: signing_key(settings, p) for p in set(TOPIC_PRODUCERS.values())}

    def verify(self, topic: str, fields: Mapping[str, str]) -> bool:
        """`topic` is the stream's: an entry naming another topic is refused too."""
        producer = TOPIC_PRODUCERS.get(topic)
        if producer is None or fields.get("topic") != topic:
            return False
        expected = signature(self._keys[producer], fields)
        return hmac.compare_digest(fields.get("sig", ""), expected)


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
