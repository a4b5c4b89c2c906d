"""The protocol every process serves with (one write per loop turn): real uvicorn on a
real socket, and the joining itself against a recording transport."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn

from services.common.http_protocol import HttpProtocol, JoinedWrites
from tests.integration.gateway.upstream import free_port
from tests.support.polling import eventually


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
        await asyncio.sleep(1.0)
        await send({"type": "http.response.body", "body": b"second\n"})
        return
    if path == "/empty":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    body = path.encode() * 3
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@asynccontextmanager
async def serving() -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=HttpProtocol, lifespan="off", log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, interval=0.01, what="server started")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_answers_keep_alive_head_no_content_and_streams_under_uvicorn() -> None:
    async with serving() as url, httpx.AsyncClient(base_url=url) as client:
        answers = [await client.get(f"/item-{i}") for i in range(30)]
        head = await client.head("/item-1")
        empty = await client.get("/empty")
        start = time.perf_counter()
        async with client.stream("GET", "/stream") as streamed:
            arrivals = [(c, time.perf_counter() - start) async for c in streamed.aiter_raw()]
    assert [a.text for a in answers] == [f"/item-{i}" * 3 for i in range(30)]
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len("/item-1") * 3)
    assert empty.status_code == 204 and empty.content == b""
    # The first chunk is not held back until the second: holding lasts one loop turn.
    assert b"".join(c for c, _ in arrivals) == b"first\nsecond\n"
    assert arrivals[0][0] == b"first\n" and arrivals[0][1] < 0.8


class Recording:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


async def test_writes_of_one_turn_leave_as_one_in_order_and_close_flushes() -> None:
    recording = Recording()
    joined = JoinedWrites(recording, asyncio.get_running_loop())  # type: ignore[arg-type]
    joined.write(b"HTTP/1.1 200 OK\r\n\r\n")
    joined.write(b"body")
    assert recording.writes == []  # held until the end of the turn
    await asyncio.sleep(0)
    assert recording.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    joined.write(b"next")
    await asyncio.sleep(0)
    assert recording.writes[-1] == b"next"
    joined.write(b"last words")
    joined.close()
    assert recording.writes[-1] == b"last words" and recording.closed
    await asyncio.sleep(0)  # the scheduled flush finds nothing more to send
    assert len(recording.writes) == 3
    assert joined.get_extra_info("peername") == "info:peername"
