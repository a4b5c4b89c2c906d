"""Wiring of the outbox relay into a service's lifespan: events to streams, emails to saq."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI

from services.common.events import publish_event
from services.common.jobs import email_queue, enqueue_email
from services.common.outbox import OutboxBase, Publisher, run_relay


def redis_publisher(app: FastAPI) -> Publisher:
    queue = email_queue(app.state.settings.redis_url)

    async def publish(row: OutboxBase) -> None:
        if row.kind == "email":
            await enqueue_email(queue, row)
        else:
            await publish_event(app.state.redis, row)

    return publish


def relay_task(
    model: type[OutboxBase], service: str
) -> Callable[[FastAPI], Coroutine[Any, Any, None]]:
    """A `ServiceSpec.background` entry that relays this service's outbox forever."""

    async def relay(app: FastAPI) -> None:
        await run_relay(app.state.session_factory, model, redis_publisher(app), service=service)

    relay.__name__ = f"{service}_outbox_relay"
    return relay
