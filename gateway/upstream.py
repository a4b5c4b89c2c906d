"""A lean HTTP/1.1 keep-alive client for the gateway's hottest hop: a GET without a body.

aiohttp's client builds per request what a GET does not need (request and response
objects, timer handles, a stream reader, the connector's bookkeeping); a GET needs one
write of the request head and a parser for the answer. Why it stays beside aiohttp
(behind GATEWAY_LEAN_UPSTREAM), and what it was measured at: docs/gateway.md,
docs/performance.md. The answer is parsed by
httptools (llhttp, the parser uvicorn serves with), so framing (Content-Length, chunked,
keep-alive) is not ours. Everything else the gateway sends - bodies, HEAD, health polls,
the OpenAPI fetch - stays on aiohttp.

One pool per worker: idle connections per instance (newest first, dropped after the
keep-alive timeout, which is shorter than the upstreams'), at most `limit` exchanges at
once. A connection goes back to the pool only after a complete answer on a keep-alive
connection; anything else (an error, a timeout, a cancelled request, an answer not read
to its end) closes it, so a late byte can never answer a later request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

# Buffered body bytes past which the connection stops reading until the client catches up.
HIGH_WATER = 256 * 1024


class UpstreamError(Exception):
    """The exchange failed; the request may not have reached the upstream's handler."""


class ConnectFailed(UpstreamError):
    """No connection: refused or unreachable (the instance is down)."""


class ConnectTimeout(UpstreamError, TimeoutError):
    """No connection within the connect timeout."""


class ConnectionBroken(UpstreamError):
    """Closed, reset or garbled before the answer was complete."""


class UnsafeRequest(ValueError):
    """A header or target that would change the request's framing (CR, LF, NUL; a space in
    the target): never sent. A ValueError, as aiohttp raises for such values."""


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int
    host_header: str  # what aiohttp would send: the port only when it is not 80

    @classmethod
    def of(cls, url: str) -> Address | None:
        """The address of a plain-HTTP instance URL; None for what this client does not
        speak (https, unix sockets): those go through aiohttp."""
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            return None
        port = parts.port or 80
        host = parts.hostname
        shown = f"[{host}]" if ":" in host else host
        return cls(host, port, shown if port == 80 else f"{shown}:{port}")


class LeanResponse:
    """The answer: status and headers as soon as they are parsed, the body as it comes."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_complete",
        "_conn",
        "_error",
        "_released",
        "_waiter",
        "content_length",
        "raw_headers",
        "status",
    )

    def __init__(
        self, conn: _Connection, status: int, raw_headers: list[tuple[bytes, bytes]]
    ) -> None:
        self._conn = conn
        self.status = status
        self.raw_headers = raw_headers
        self.content_length: int | None = None
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._complete = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._released = False

    # --- fed by the connection (event-loop callbacks) ---
    def _feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        if self._buffered > HIGH_WATER:
            self._conn.pause()
        self._wake()

    def _finish(self, error: BaseException | None = None) -> None:
        if self._complete or self._error is not None:
            return
        if error is None:
            self._complete = True
        else:
            self._error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- read by the proxy ---
    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _take(self) -> bytes:
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        self._conn.resume()
        return data

    async def read(self) -> bytes:
        """The whole body (for answers known to be small)."""
        while not self._complete:
            if self._error is not None:
                raise self._error
            await self._wait()
        return self._take()

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        while True:
            if self._chunks:
                yield self._take()
            elif self._complete:
                return
            elif self._error is not None:
                raise self._error
            else:
                await self._wait()

    def release(self) -> None:
        """Back to the pool if the answer was read to its end on a keep-alive
        connection; otherwise the connection is closed. Once: it frees a slot."""
        if self._released:
            return
        self._released = True
        self._conn.done(reusable=self._complete and not self._chunks)


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one exchange at a time."""

    def __init__(self, pool: UpstreamPool, address: Address) -> None:
        self.pool = pool
        self.address = address
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._response: LeanResponse | None = None
        self._head: asyncio.Future[LeanResponse] | None = None
        self._keep_alive = False
        self._framed = False
        self._finished = False  # this exchange's answer is complete
        self._timer: asyncio.TimerHandle | None = None
        self._paused = False
        self.answered = False  # a byte of this exchange's answer arrived

    # --- asyncio.Protocol ---
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is not an asyncio.Transport subclass, but is one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._head is None or self._finished:
            # Bytes nobody asked for (on an idle connection, or after the complete answer):
            # never let them answer, or prefix the answer to, a later request.
            self.close()
            return
        self.answered = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionBroken(f"unparsable answer: {exc}"))

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost says the rest

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        response = self._response
        if response is not None and not response._complete and not self._framed and exc is None:
            # An answer delimited by the end of the connection (neither Content-Length
            # nor chunked): the close is its end.
            response._finish()
            return
        self._fail(ConnectionBroken("connection closed" if exc is None else str(exc)))

    # --- httptools callbacks ---
    def on_message_begin(self) -> None:
        if self._finished:
            # A second answer in the same read as the first: stop parsing (the parser
            # raises) and close; the complete first answer stays readable.
            raise ConnectionBroken("bytes after a complete answer")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # 1xx (no Expect is sent, but a server may still say 100/103)
            self._headers = []
            return
        response = LeanResponse(self, status, self._headers)
        self._headers = []
        for name, value in response.raw_headers:
            lowered = name.lower()
            if lowered == b"content-length":
                self._framed = True
                try:
                    response.content_length = int(value)
                except ValueError:
                    pass  # llhttp refuses a malformed Content-Length before we get here
            elif lowered == b"transfer-encoding":
                self._framed = True
        if status in (204, 304):
            self._framed = True
        self._keep_alive = bool(self._parser.should_keep_alive())
        self._response = response
        if self._head is not None and not self._head.done():
            self._head.set_result(response)

    def on_body(self, body: bytes) -> None:
        if self._response is not None:
            self._response._feed(body)

    def on_message_complete(self) -> None:
        if self._response is not None:  # not an interim 1xx answer
            self._finished = True
            self._cancel_timer()
            self._response._finish()

    # --- used by the pool and the response ---
    def start(self, head: bytes, deadline: float) -> asyncio.Future[LeanResponse]:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._head = loop.create_future()
        self.answered = False
        self._response = None
        self._framed = False
        self._finished = False
        self._timer = loop.call_at(deadline, self._timed_out)
        self.transport.write(head)
        return self._head

    def _timed_out(self) -> None:
        self._timer = None
        self._fail(TimeoutError("upstream answer timed out"))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fail(self, error: BaseException) -> None:
        self._cancel_timer()
        if self._head is not None and not self._head.done():
            self._head.set_exception(error)
        if self._response is not None:
            self._response._finish(error)
        self.close()

    def pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def done(self, *, reusable: bool) -> None:
        self._cancel_timer()
        self._head = None
        self._response = None
        if reusable and self._keep_alive and not self.closed and not self._paused:
            self.pool.put_back(self)
        else:
            self.close()
        self.pool.slot_free()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class UpstreamPool:
    def __init__(
        self,
        *,
        limit: int,
        keepalive_timeout: float,
        connect_timeout: float,
        total_timeout: float,
    ) -> None:
        self.keepalive_timeout = keepalive_timeout
        self.connect_timeout = connect_timeout
        self.total_timeout = total_timeout
        self._idle: dict[Address, list[_Connection]] = {}
        self._slots = asyncio.Semaphore(limit)
        self._addresses: dict[str, Address | None] = {}
        self._tracer: Any = None

    def enable_tracing(self, provider: Any = None) -> None:
        """Give each GET a client span and send its `traceparent` upstream, as the aiohttp
        instrumentation does for the gateway's other calls."""
        from opentelemetry import trace

        self._tracer = trace.get_tracer("gateway.upstream", tracer_provider=provider)

    def address(self, url: str) -> Address | None:
        try:
            return self._addresses[url]
        except KeyError:
            address = self._addresses[url] = Address.of(url)
            return address

    def idle_count(self, address: Address) -> int:
        return len(self._idle.get(address, ()))

    async def get(
        self, address: Address, target: bytes, headers: Sequence[tuple[str, str]]
    ) -> LeanResponse:
        """Send `GET target` with `headers`; the answer once its head has arrived. The
        caller must `release()` it (also after an error while reading the body)."""
        if self._tracer is None:
            return await self._get(address, target, headers)
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind, Status, StatusCode

        attributes = {
            "http.request.method": "GET",
            "url.full": f"http://{address.host_header}{target.decode('latin-1')}",
            "server.address": address.host,
            "server.port": address.port,
        }
        with self._tracer.start_as_current_span(
            "GET", kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            # Our span's context replaces the caller's (traceparent, tracestate), as the
            # aiohttp instrumentation does: two traceparent headers would be invalid.
            ours = {name.lower() for name in carrier}
            forwarded = [(n, v) for n, v in headers if n.lower() not in ours]
            response = await self._get(address, target, [*forwarded, *carrier.items()])
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            return response

    async def _get(
        self, address: Address, target: bytes, headers: Sequence[tuple[str, str]]
    ) -> LeanResponse:
        lines = "".join([f"{name}: {value}\r\n" for name, value in headers])
        # One CR and one LF per header line, no NUL: a value can never start a new line
        # (header injection, request splitting), whatever its source.
        if (
            lines.count("\n") != len(headers)
            or lines.count("\r") != len(headers)
            or "\0" in lines
            or b"\r" in target
            or b"\n" in target
            or b"\0" in target
            or b" " in target
        ):
            raise UnsafeRequest("CR, LF, NUL or space in a header or the request target")
        head = b"GET %s HTTP/1.1\r\nhost: %s\r\n%s\r\n" % (
            target,
            address.host_header.encode("latin-1"),
            lines.encode("latin-1"),
        )
        await self._slots.acquire()
        conn: _Connection | None = None
        try:
            deadline = asyncio.get_running_loop().time() + self.total_timeout
            conn = self._reuse(address)
            if conn is not None:
                try:
                    return await conn.start(head, deadline)
                except ConnectionBroken:
                    if conn.answered:
                        raise
                    # The server closed the idle connection as we sent on it (its
                    # keep-alive ran out first): not the instance's failure. A GET may
                    # be sent again (RFC 9110 9.2.2), once, on a new connection.
            conn = await self._open(address)
            return await conn.start(head, deadline)
        except BaseException:
            if conn is not None:
                conn.close()
            self._slots.release()
            raise

    def put_back(self, conn: _Connection) -> None:
        conn.idle_since = time.monotonic()
        self._idle.setdefault(conn.address, []).append(conn)

    def slot_free(self) -> None:
        self._slots.release()

    def _reuse(self, address: Address) -> _Connection | None:
        idle = self._idle.get(address)
        if not idle:
            return None
        oldest_kept = time.monotonic() - self.keepalive_timeout
        while idle:
            conn = idle.pop()  # newest first: the least likely to be closed by the server
            if not conn.closed and conn.idle_since > oldest_kept:
                return conn
            conn.close()
        return None

    async def _open(self, address: Address) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                transport, protocol = await loop.create_connection(
                    lambda: _Connection(self, address), address.host, address.port
                )
        except TimeoutError:
            raise ConnectTimeout(f"{address.host}:{address.port}") from None
        except OSError as exc:
            raise ConnectFailed(f"{address.host}:{address.port}: {exc}") from exc
        # uvloop may call connection_made after create_connection has returned.
        protocol.transport = transport
        return protocol

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
