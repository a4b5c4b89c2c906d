"""The outbox relay's email queue: a Redis client with socket timeouts, kept on app.state,
closed at shutdown; and background loops that stop even when asyncio loses a cancel."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.common.cancel import raise_if_cancel_requested
from tests.integration.auth.support import auth_client, new_email, outbox, register
from tests.support.polling import eventually

pytestmark = pytest.mark.usefixtures("infra")


async def test_relay_queue_has_timeouts_enqueues_and_is_closed_at_shutdown() -> None:
    async with auth_client(background_tasks=True, redis_timeout=0.7) as (app, client):
        # set when the relay task has started
        queue = await eventually(lambda: getattr(app.state, "email_queue", None))
        kwargs = queue.redis.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == 0.7
        assert kwargs["socket_connect_timeout"] == 0.7
        email = new_email()
        await register(client, email)
        rows = await outbox(app, to=email)
        assert rows, "no email in the outbox"
        job: Any = await eventually(lambda: queue.job(str(rows[0].id)), what="the job enqueued")
        assert job.kwargs["outbox_id"] == str(rows[0].id)
        pool = queue.redis.connection_pool
        assert any(c.is_connected for c in pool._available_connections)
    # The lifespan cancelled the relay task, whose `finally` closed the queue.
    assert not any(
        c.is_connected for c in pool._available_connections + list(pool._in_use_connections)
    )


async def test_a_cancel_swallowed_by_wait_for_still_stops_the_loop() -> None:
    """Python 3.11's wait_for returns the result when the cancel arrives as it is ready
    (redis-py drains writes through it); the loop must notice the pending request."""
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    rounds = 0

    async def loop_body() -> None:
        nonlocal rounds
        while True:
            rounds += 1
            if rounds == 1:
                await asyncio.wait_for(ready, 5)
            raise_if_cancel_requested()
            await asyncio.sleep(0.01)

    task = asyncio.create_task(loop_body())
    await asyncio.sleep(0)  # the task now waits inside wait_for
    ready.set_result(1)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=3)
    assert task in done and task.cancelled()
    assert rounds == 1  # stopped at the check, did not poll on
