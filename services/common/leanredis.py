"""A lean Redis client for the hottest paths: a rate-limit hit on every gateway request,
the cache GET of every cached catalog read.

redis-py's asyncio client measured 180-250 µs of CPU per script call on this stack and
~53 µs per GET (pool checkout, retry wrapper, a `wait_for` task per command,
StreamReader parsing); this one measured 22-28 µs: one TCP connection per process,
commands pipelined on it (replies come back in order, so a FIFO of futures matches
them), the commands of one event-loop turn written with ONE syscall, and a RESP2 parser.

Failures raise redis-py's exceptions (ConnectionError, TimeoutError, ResponseError) so
the caller's handling (fail open, guard, cooldown) is the same as with redis-py. A
timeout or a protocol error drops the connection (a late reply must never answer a later
request); the next call reconnects. Everything else stays on redis-py.

ONE switch, REDIS_LEAN (CommonSettings.redis_lean, applied by the app factory at
startup): false makes `for_client` answer None, and every caller falls back to the plain
redis-py client it was made from (tests/integration/common/test_leanredis.py holds the
two to the same answers).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Reply = int | bytes | None | list[Any]

# REDIS_LEAN; set by services.common.app.create_app from the validated settings.
ENABLED = True


def encode(*args: bytes | str | int) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[asyncio.Future[Reply]] = deque()
        self.lost = False
        self._buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail(RedisConnectionError(f"connection to Redis lost: {exc or 'closed'}"))

    def _fail(self, exc: Exception) -> None:
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(exc)

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        pos = 0
        try:
            while self.waiting:
                parsed = _parse(buf, pos)
                if parsed is None:
                    break
                reply, pos = parsed
                future = self.waiting.popleft()
                if not future.done():  # a caller that gave up (its timeout drops us anyway)
                    if isinstance(reply, ResponseError):
                        future.set_exception(reply)
                    else:
                        future.set_result(reply)
        except ValueError as exc:  # not a reply we know: the stream cannot be trusted
            self._abort(f"unexpected reply from Redis: {exc}")
            return
        if pos < len(buf) and not self.waiting:
            # Bytes with no command waiting for them: kept, they would be read as the reply
            # to the next command. The stream cannot be trusted: drop the connection.
            self._abort("bytes from Redis that no command asked for")
            return
        self._buf = buf[pos:]

    def _abort(self, reason: str) -> None:
        self.lost = True  # the next call connects anew instead of writing here
        self._buf = b""
        self._fail(RedisConnectionError(reason))
        if self.transport is not None:
            self.transport.abort()


def _line(buf: bytes, pos: int) -> tuple[bytes, int] | None:
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return None
    return buf[pos:end], end + 2


def _parse(buf: bytes, pos: int) -> tuple[Reply | ResponseError, int] | None:
    """One complete RESP2 reply from buf[pos:] and where the next starts; None: not all
    here yet. An error inside an array (only EXEC makes one) is refused as unexpected."""
    got = _line(buf, pos)
    if got is None:
        return None
    line, pos = got
    kind, rest = line[:1], line[1:]
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None, pos  # nil
        if len(buf) < pos + size + 2:
            return None
        return buf[pos : pos + size], pos + size + 2
    if kind == b":":
        return int(rest), pos
    if kind == b"+":
        return rest, pos
    if kind == b"-":
        return ResponseError(rest.decode("utf-8", "replace")), pos
    if kind == b"*":
        items: list[Reply] = []
        for _ in range(max(int(rest), 0)):
            parsed = _parse(buf, pos)
            if parsed is None:
                return None
            item, pos = parsed
            if isinstance(item, ResponseError):
                raise ValueError(str(item)[:40])
            items.append(item)
        return items, pos
    raise ValueError(line[:40])


class LeanRedis:
    """One pipelined Redis connection per process for hot-path commands (module doc)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_name: str,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 0.5,
    ) -> None:
        self._address = (host, port)
        self._handshake: list[bytes] = []
        if password is not None:
            auth = ("AUTH", username, password) if username else ("AUTH", password)
            self._handshake.append(encode(*auth))
        if db:
            self._handshake.append(encode("SELECT", db))
        # Named, so CLIENT LIST tells it apart from redis-py's pool.
        self._handshake.append(encode("CLIENT", "SETNAME", client_name))
        self.timeout = timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None
        self._out: list[bytes] = []

    @staticmethod
    def options_of(redis: aioredis.Redis) -> dict[str, Any] | None:
        """Keyword arguments for the same server, database and credentials as redis-py's
        client; None when it is not a plain TCP connection (TLS, unix socket): the caller
        keeps redis-py."""
        pool = redis.connection_pool
        if pool.connection_class is not Connection:
            return None
        kw: dict[str, Any] = pool.connection_kwargs
        return {
            "host": kw.get("host", "localhost"),
            "port": int(kw.get("port", 6379)),
            "db": int(kw.get("db", 0) or 0),
            "username": kw.get("username"),
            "password": kw.get("password"),
            "timeout": float(kw.get("socket_timeout") or 0.5),
        }

    @classmethod
    def for_client(cls, redis: aioredis.Redis, client_name: str) -> LeanRedis | None:
        """The fast path for redis-py's server; None when REDIS_LEAN is off or the
        connection is not plain TCP: the caller uses `redis` itself."""
        options = cls.options_of(redis) if ENABLED else None
        return None if options is None else cls(**options, client_name=client_name)

    async def call(self, *args: bytes | str | int) -> Reply:
        """One command's reply (None for a nil bulk string)."""
        protocol = self._protocol
        if protocol is None or protocol.lost:
            protocol = await self._connect()
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        protocol.waiting.append(future)
        self._send(protocol, encode(*args))
        return await self._wait(protocol, future)

    async def eval(self, script: bytes, key: str, *args: bytes | str | int) -> Reply:
        """EVAL with one key, as redis-py's `eval(script, 1, key, *args)`. EVAL, not
        EVALSHA: a restarted or flushed Redis cannot answer NOSCRIPT, and Redis caches
        the compiled script by its hash anyway."""
        return await self.call(b"EVAL", script, b"1", key, *args)

    async def get(self, key: str) -> bytes | None:
        reply = await self.call(b"GET", key)
        if reply is not None and not isinstance(reply, bytes):
            raise ResponseError(f"unexpected GET reply {type(reply).__name__}")
        return reply

    def _send(self, protocol: _Protocol, command: bytes) -> None:
        # Commands issued during one loop turn leave in one write (one syscall).
        self._out.append(command)
        if len(self._out) == 1:
            asyncio.get_running_loop().call_soon(self._flush, protocol)

    def _flush(self, protocol: _Protocol) -> None:
        data, self._out = b"".join(self._out), []
        if protocol.transport is not None and not protocol.lost:
            protocol.transport.write(data)

    async def _wait(self, protocol: _Protocol, future: asyncio.Future[Reply]) -> Reply:
        # A plain timer, not asyncio.timeout(): that one costs a context manager, a
        # reschedule and the task's cancel bookkeeping on every call (~4 % of a proxied
        # read's gateway CPU); only an expired wait needs any of it.
        loop = asyncio.get_running_loop()
        timer = loop.call_at(loop.time() + self.timeout, self._expire, protocol, future)
        try:
            return await future
        finally:
            timer.cancel()

    def _expire(self, protocol: _Protocol, future: asyncio.Future[Reply]) -> None:
        if not future.done():
            future.set_exception(RedisTimeoutError("Redis did not answer in time"))
            self._drop(protocol)

    def _drop(self, protocol: _Protocol) -> None:
        if protocol.transport is not None:
            protocol.transport.abort()
        if self._protocol is protocol:
            self._protocol = None

    async def _connect(self) -> _Protocol:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._protocol is not None and not self._protocol.lost:
                return self._protocol  # another caller connected meanwhile
            self._out = []  # commands for a lost connection: their futures failed
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self.timeout):
                    _, protocol = await loop.create_connection(_Protocol, *self._address)
            except TimeoutError:
                raise RedisTimeoutError("connecting to Redis timed out") from None
            except OSError as exc:
                raise RedisConnectionError(f"cannot connect to Redis: {exc}") from exc
            try:
                for command in self._handshake:
                    future: asyncio.Future[Reply] = loop.create_future()
                    protocol.waiting.append(future)
                    cast(asyncio.Transport, protocol.transport).write(command)
                    await self._wait(protocol, future)  # ResponseError on a bad AUTH
            except BaseException:
                self._drop(protocol)
                raise
            self._protocol = protocol
            return protocol

    async def close(self) -> None:
        if self._protocol is not None:
            self._drop(self._protocol)
