"""The gateway's health polls over real sockets: an instance that was down at a poll (it
started after the gateway, or restarted) is polled again every unhealthy interval, not
only every health interval, so it serves again within a fraction of a second."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
from aiohttp import web

from gateway.routing import RoutingTable, poll_health
from tests.support.polling import eventually
from tools.devstack.embedded import free_port


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def test_an_instance_up_after_a_failed_poll_is_back_within_the_unhealthy_interval() -> None:
    port = free_port()
    table = RoutingTable(
        {"/api/v1/catalog": [f"http://127.0.0.1:{port}"]}, failure_threshold=5, open_seconds=10
    )
    (instance,) = table.instances
    app = web.Application()
    app.router.add_get("/healthz", _healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    async with aiohttp.ClientSession() as session:
        # A health interval far longer than the test: only the unhealthy one can bring it back.
        poller = asyncio.create_task(
            poll_health(table, session, interval=60.0, wait=1.0, unhealthy_interval=0.1)
        )
        try:
            # The first poll: refused.
            await eventually(lambda: not instance.healthy, timeout=5, what="marked unhealthy")
            await web.TCPSite(runner, "127.0.0.1", port).start()  # the instance starts now
            # Back well before the 60 s health interval.
            await eventually(lambda: instance.healthy, timeout=2, what="healthy again")
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            await runner.cleanup()
