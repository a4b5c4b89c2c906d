"""Wiring of the outbox relay into a service's lifespan: events to streams, emails to saq."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI
from saq import Queue

from services.common.events import publish_event, signing_key
from services.common.jobs import email_queue, enqueue_email
from services.common.outbox import OutboxBase, Publisher, run_relay


def redis_publisher(app: FastAPI, queue: Queue, service: str) -> Publisher:
    key = signing_key(app.state.settings, service)  # events leave signed as this producer

    async def publish(row: OutboxBase) -> None:
        if row.kind == "email":
            await enqueue_email(queue, row)
        else:
            await publish_event(app.state.redis, row, key)

    return publish


def relay_task(
    model: type[OutboxBase], service: str
) -> Callable[[FastAPI], Coroutine[Any, Any, None]]:
    """A `ServiceSpec.background` entry that relays this service's outbox forever."""

    async def relay(app: FastAPI) -> None:
        settings = app.state.settings
        # On app.state for inspection; closed when the lifespan cancels this task.
        queue = app.state.email_queue = email_queue(settings.redis_url, settings.redis_timeout)
        try:
            publisher = redis_publisher(app, queue, service)
            await run_relay(app.state.session_factory, model, publisher, service=service)
        finally:
            await queue.disconnect()

    relay.__name__ = f"{service}_outbox_relay"
    return relay
