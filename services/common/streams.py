"""Consuming domain events from Redis Streams with a consumer group.

At-least-once: a message is acknowledged only after the handler returned (the
handler commits its own transaction first); messages left pending by a consumer
that died are reclaimed with XAUTOCLAIM after `claim_idle_ms`. Handlers must be
idempotent (key on the event id: see `services.common.inbox`).

The consumer reads through its own client (services.common.redis.blocking_reader: the
shared client's server and options, a socket timeout that covers the XREADGROUP block),
closed when `run()` ends.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from services.common.cancel import pause, raise_if_cancel_requested
from services.common.context import request_id_var
from services.common.events import STREAM_PREFIX, EventVerifier, stream_name
from services.common.metrics import Counter, Gauge
from services.common.redis import REDIS_ERRORS, blocking_reader

log = logging.getLogger("services.streams")

EVENTS_CONSUMED = Counter(
    "events_consumed_total", "Events handled and acknowledged", ["group", "topic"]
)
EVENTS_FAILED = Counter(
    "events_failed_total", "Event handler failures (to be redelivered)", ["group", "topic"]
)
EVENTS_REJECTED = Counter(
    "events_rejected_total",
    "Entries dropped unhandled: unsigned, badly signed or from the wrong producer",
    ["group", "topic"],
)
EVENT_LAG = Gauge(
    "event_consumer_lag_messages",
    "Entries not yet delivered to the group",
    ["group", "topic"],
    # live: a recycled worker's last value must not stay in the max forever
    multiprocess_mode="livemax",
)
EVENT_PENDING = Gauge(
    "event_consumer_pending_messages",
    "Delivered but unacknowledged entries",
    ["group", "topic"],
    multiprocess_mode="livemax",
)


@dataclass(frozen=True, slots=True)
class Event:
    id: str  # the outbox row id: stable across redeliveries
    topic: str
    data: dict[str, Any]
    request_id: str | None
    stream_id: str


Handler = Callable[[Event], Awaitable[None]]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode(stream_id: bytes | str, fields: dict[Any, Any]) -> Event:
    text = _text
    f = {text(k): text(v) for k, v in fields.items()}
    return Event(
        id=f.get("id", text(stream_id)),
        topic=f.get("topic", ""),
        data=json.loads(f.get("data", "{}")),
        request_id=f.get("request_id") or None,
        stream_id=text(stream_id),
    )


async def ensure_groups(redis: aioredis.Redis, topics: Sequence[str], group: str) -> None:
    for topic in topics:
        try:
            await redis.xgroup_create(stream_name(topic), group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


class StreamConsumer:
    """One consumer in `group` reading `topics`; run `run()` as a background task."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        group: str,
        consumer: str,
        handlers: dict[str, Handler],
        batch: int = 50,
        block_ms: int = 1000,
        claim_idle_ms: int = 30_000,
        verifier: EventVerifier | None = None,
    ) -> None:
        self.redis = blocking_reader(redis, block_ms / 1000)
        # The services always pass one; None (tests of the mechanics) believes any entry.
        self.verifier = verifier
        self.group = group
        self.consumer = consumer
        self.handlers = handlers
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        for topic in handlers:  # series exist from the start: increase() sees the first one
            EVENTS_CONSUMED.labels(group, topic)
            EVENTS_FAILED.labels(group, topic)
            EVENTS_REJECTED.labels(group, topic)
        # Failed rounds of the run loop by exception type (what a test or operator checks).
        self.failures: collections.Counter[str] = collections.Counter()

    async def handle(self, event: Event) -> bool:
        handler = self.handlers.get(event.topic)
        token = request_id_var.set(event.request_id)
        try:
            if handler is not None:
                await handler(event)
        except Exception:
            EVENTS_FAILED.labels(self.group, event.topic).inc()
            log.exception(
                "event handler failed; it will be redelivered",
                extra={"event_id": event.id, "topic": event.topic},
            )
            return False
        finally:
            request_id_var.reset(token)
        await self.redis.xack(stream_name(event.topic), self.group, event.stream_id)
        EVENTS_CONSUMED.labels(self.group, event.topic).inc()
        return True

    async def accept(self, topic: str, stream_id: bytes | str, fields: dict[Any, Any]) -> bool:
        """Handle one entry of `topic`'s stream if it is authentic; a forged one is
        acknowledged unhandled (dropped), logged and counted, never retried."""
        if self.verifier is not None:
            plain = {_text(k): _text(v) for k, v in fields.items()}
            if not self.verifier.verify(topic, plain):
                await self.redis.xack(stream_name(topic), self.group, stream_id)
                EVENTS_REJECTED.labels(self.group, topic).inc()
                log.warning(
                    "event with no valid signature dropped",
                    extra={"topic": topic, "stream_id": _text(stream_id)},
                )
                return False
        return await self.handle(_decode(stream_id, fields))

    async def reclaim(self) -> int:
        """Take over entries a dead consumer left pending, and handle them."""
        handled = 0
        for topic in self.handlers:
            _, messages, *_ = await self.redis.xautoclaim(
                stream_name(topic),
                self.group,
                self.consumer,
                min_idle_time=self.claim_idle_ms,
                start_id="0-0",
                count=self.batch,
            )
            for stream_id, fields in messages:
                if fields is not None:
                    handled += await self.accept(topic, stream_id, fields)
        return handled

    async def poll(self, block_ms: int | None = None) -> int:
        """Read and handle one batch of new entries; returns how many were handled."""
        streams = {stream_name(t): ">" for t in self.handlers}
        result: Any = await self.redis.xreadgroup(
            self.group,
            self.consumer,
            streams,  # type: ignore[arg-type]
            count=self.batch,
            # Never longer than the reader's socket timeout covers.
            block=min(block_ms, self.block_ms) if block_ms else self.block_ms,
        )
        return await self._handle_all(result)

    async def replay_own_pending(self) -> int:
        """Handle entries already delivered to this consumer but not acknowledged: a read
        whose reply was lost (a socket timeout, a dropped connection) leaves them here,
        and XAUTOCLAIM would only hand them back after `claim_idle_ms`."""
        streams = {stream_name(t): "0" for t in self.handlers}
        result: Any = await self.redis.xreadgroup(
            self.group,
            self.consumer,
            streams,  # type: ignore[arg-type]
            count=self.batch,
        )
        return await self._handle_all(result)

    async def _handle_all(self, result: Any) -> int:
        handled = 0
        for stream, messages in result or []:
            topic = _text(stream).removeprefix(STREAM_PREFIX)
            for stream_id, fields in messages:
                if fields:  # an entry trimmed from the stream while pending has none
                    handled += await self.accept(topic, stream_id, fields)
        return handled

    async def sample_lag(self) -> None:
        for topic in self.handlers:
            for info in await self.redis.xinfo_groups(stream_name(topic)):
                name = info.get("name")
                name = name.decode() if isinstance(name, bytes) else name
                if name == self.group:
                    EVENT_LAG.labels(self.group, topic).set(info.get("lag") or 0)
                    EVENT_PENDING.labels(self.group, topic).set(info.get("pending") or 0)

    async def run(self) -> None:
        try:
            await self._consume_forever()
        finally:
            await self.redis.aclose()  # the reading client is the consumer's own

    async def _consume_forever(self) -> None:
        delay = 0.5
        next_reclaim = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                await ensure_groups(self.redis, list(self.handlers), self.group)
                await self.replay_own_pending()
                while True:
                    if loop.time() >= next_reclaim:
                        await self.reclaim()
                        await self.sample_lag()
                        next_reclaim = loop.time() + self.claim_idle_ms / 1000 / 2
                    await self.poll()
                    raise_if_cancel_requested()  # see services.common.cancel
                    delay = 0.5
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS as exc:
                self.failures[type(exc).__name__] += 1
                log.warning("event consumer lost redis, retrying: %s", type(exc).__name__)
            except Exception as exc:
                self.failures[type(exc).__name__] += 1
                log.exception("event consumer error, retrying")
            await pause(delay)
            delay = min(delay * 2, 10.0)
