"""The gateway's lean GET client against real sockets: servers that answer with exactly
the bytes each case needs (keep-alive, chunked, close-delimited, broken, silent)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from gateway.upstream import (
    Address,
    ConnectFailed,
    ConnectionBroken,
    LeanResponse,
    UpstreamPool,
)
from tests.integration.gateway.upstream import free_port

# Called once per request read on a connection: (request head, writer, nth request on
# this connection). Returns False to stop serving the connection (it is then closed).
Answer = Callable[[bytes, asyncio.StreamWriter, int], Awaitable[bool]]


class Server:
    def __init__(self) -> None:
        self.connections = 0
        self.heads: list[bytes] = []


@asynccontextmanager
async def serve(answer: Answer) -> AsyncIterator[tuple[Server, Address]]:
    state = Server()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        n = 0
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                state.heads.append(head)
                n += 1
                if not await answer(head, writer, n):
                    return
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    address = Address.of(f"http://127.0.0.1:{port}")
    assert address is not None
    try:
        yield state, address
    finally:
        server.close()


def pool(**overrides: float) -> UpstreamPool:
    values = {"limit": 8, "keepalive_timeout": 4.0, "connect_timeout": 0.5, "total_timeout": 1.0}
    values.update(overrides)
    return UpstreamPool(
        limit=int(values["limit"]),
        keepalive_timeout=values["keepalive_timeout"],
        connect_timeout=values["connect_timeout"],
        total_timeout=values["total_timeout"],
    )


async def get(p: UpstreamPool, address: Address, target: bytes = b"/x") -> tuple[int, bytes]:
    response = await p.get(address, target, [("x-request-id", "r1")])
    try:
        return response.status, await response.read()
    finally:
        response.release()


def fixed(body: bytes, extra: bytes = b"") -> Answer:
    async def answer(head: bytes, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)
        )
        return True

    return answer


async def test_keep_alive_reuses_one_connection_and_sends_the_head() -> None:
    async with serve(fixed(b'{"ok":true}')) as (server, address):
        p = pool()
        answers = [await get(p, address, b"/api/v1/catalog/products/1?a=1") for _ in range(5)]
        p.close()
    assert answers == [(200, b'{"ok":true}')] * 5
    assert server.connections == 1
    head = server.heads[0]
    assert head.startswith(b"GET /api/v1/catalog/products/1?a=1 HTTP/1.1\r\n")
    assert f"host: 127.0.0.1:{address.port}\r\n".encode() in head
    assert b"x-request-id: r1\r\n" in head


async def test_chunked_and_large_answers_stream_whole_then_reuse() -> None:
    piece = bytes(range(256)) * 400  # 100 KiB per chunk, 400 KiB in all

    async def answer(head: bytes, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(4):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        return True

    async with serve(answer) as (server, address):
        p = pool()
        for _ in range(2):
            response = await p.get(address, b"/big", [])
            assert response.content_length is None
            received = b"".join([chunk async for chunk in response.iter_chunks()])
            response.release()
            assert received == piece * 4
        p.close()
    assert server.connections == 1


async def test_connection_close_and_close_delimited_answers_are_not_reused() -> None:
    async def answer(head: bytes, writer: asyncio.StreamWriter, n: int) -> bool:
        if b"/delimited" in head:  # no length, no chunks: the close ends the body
            writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        return False

    async with serve(answer) as (server, address):
        p = pool()
        assert await get(p, address, b"/delimited") == (200, b"until the end")
        assert await get(p, address) == (200, b"ok")
        assert await get(p, address) == (200, b"ok")
        assert p.idle_count(address) == 0
        p.close()
    assert server.connections == 3


async def test_an_idle_connection_the_server_closed_is_replaced_not_failed() -> None:
    async def answer(head: bytes, writer: asyncio.StreamWriter, n: int) -> bool:
        # Says keep-alive, then closes: what a server whose keep-alive ran out does.
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        return False

    async with serve(answer) as (server, address):
        p = pool()
        assert await get(p, address) == (200, b"ok")
        await asyncio.sleep(0.05)  # the close arrives while the connection is idle
        assert await get(p, address) == (200, b"ok")
        p.close()
    assert server.connections == 2


async def test_a_stale_connection_closed_as_we_send_is_retried_once() -> None:
    p = pool()
    async with serve(fixed(b"ok")) as (server, address):
        assert await get(p, address) == (200, b"ok")
        conn = p._idle[address][-1]
        # The server closes it, and we have not yet seen the close: simulate the race by
        # marking our side open and killing the socket under it.
        assert conn.transport is not None
        sock = conn.transport.get_extra_info("socket")
        sock.shutdown(2)  # SHUT_RDWR: the write will fail or the read will see EOF
        assert await get(p, address) == (200, b"ok")
        p.close()
    assert server.connections == 2


async def test_broken_and_garbled_answers_raise_and_never_return_to_the_pool() -> None:
    async def answer(head: bytes, writer: asyncio.StreamWriter, n: int) -> bool:
        if b"/garbage" in head:
            writer.write(b"SMTP ready\r\n\r\n")
        else:  # promises 100 bytes, sends 10, closes
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")
        return False

    async with serve(answer) as (_, address):
        p = pool()
        with pytest.raises(ConnectionBroken):
            await p.get(address, b"/garbage", [])
        response = await p.get(address, b"/short", [])
        with pytest.raises(ConnectionBroken):
            await response.read()
        response.release()
        assert p.idle_count(address) == 0
        p.close()


async def test_a_silent_server_times_out_and_the_slot_is_freed() -> None:
    async def answer(head: bytes, writer: asyncio.StreamWriter, n: int) -> bool:
        await asyncio.sleep(5)
        return False

    async with serve(answer) as (_, address):
        p = pool(limit=1, total_timeout=0.2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            await p.get(address, b"/", [])
        assert 0.15 < loop.time() - started < 2.0
        with pytest.raises(TimeoutError):  # the only slot came back
            await asyncio.wait_for(p.get(address, b"/", []), 1.0)
        p.close()


async def test_refused_connection_is_connect_failed() -> None:
    address = Address.of(f"http://127.0.0.1:{free_port()}")
    assert address is not None
    with pytest.raises(ConnectFailed):
        await pool().get(address, b"/", [])


async def test_unread_answer_or_a_cancelled_request_closes_the_connection() -> None:
    release = asyncio.Event()

    async def answer(head: bytes, writer: asyncio.StreamWriter, n: int) -> bool:
        if b"/wait" in head:
            await release.wait()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
        return True

    async with serve(answer) as (server, address):
        p = pool(limit=1)
        unread: LeanResponse = await p.get(address, b"/", [])
        unread.release()  # body never read: its bytes must not answer the next request
        unread.release()  # twice is once: the single slot is not freed twice
        assert p._slots._value == 1
        assert p.idle_count(address) == 0
        waiting = asyncio.create_task(p.get(address, b"/wait", []))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        release.set()
        # One slot: it would hang here if the cancelled request had kept it.
        assert await asyncio.wait_for(get(p, address), 1.0) == (200, b"hello")
        p.close()
    assert server.connections == 3


async def test_bytes_on_an_idle_connection_close_it() -> None:
    async def answer(head: bytes, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nlate")  # unasked
        return True

    async with serve(answer) as (server, address):
        p = pool()
        assert await get(p, address) == (200, b"ok")
        await asyncio.sleep(0.1)
        assert await get(p, address) == (200, b"ok")  # a new connection, not "late"
        p.close()
    assert server.connections == 2


def test_only_plain_http_urls_use_the_lean_client() -> None:
    assert Address.of("https://catalog:8443") is None
    assert Address.of("http+unix://%2Ftmp%2Fs") is None
    default = Address.of("http://catalog")
    assert default is not None and (default.port, default.host_header) == (80, "catalog")
    v6 = Address.of("http://[::1]:8002")
    assert v6 is not None and (v6.host, v6.host_header) == ("::1", "[::1]:8002")


async def test_with_tracing_each_get_has_a_client_span_and_sends_its_traceparent() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with serve(fixed(b"ok")) as (server, address):
        p = pool()
        p.enable_tracing(provider)
        assert await get(p, address, b"/traced") == (200, b"ok")
        p.close()
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["url.full"] == f"http://{address.host_header}/traced"
    trace_id = format(span.context.trace_id, "032x")
    span_id = format(span.context.span_id, "016x")
    assert f"traceparent: 00-{trace_id}-{span_id}-".encode() in server.heads[0]
