"""Domain events on Redis Streams: one stream per topic, trimmed to a bounded length."""

from __future__ import annotations

import json

import redis.asyncio as aioredis

from services.common.outbox import OutboxBase

STREAM_PREFIX = "events:"
STREAM_MAXLEN = 100_000  # approximate trim: Redis never grows without bound


def stream_name(topic: str) -> str:
    return STREAM_PREFIX + topic


async def publish_event(redis: aioredis.Redis, row: OutboxBase) -> None:
    """XADD the outbox row; its id travels with it so consumers can drop redeliveries."""
    fields = {
        "id": str(row.id),
        "topic": row.topic,
        "data": json.dumps(row.payload, separators=(",", ":"), default=str),
        "request_id": row.request_id or "",
        "created_at": row.created_at.isoformat(),
    }
    await redis.xadd(
        stream_name(row.topic),
        fields,  # type: ignore[arg-type]
        maxlen=STREAM_MAXLEN,
        approximate=True,
    )
