"""The forwarding itself, as a raw ASGI app (no Request objects on the hot path).

Per request: match a route, authenticate at the edge, rate limit, then send the request
to one instance of the upstream and stream the answer back: a GET without a body over
the worker's lean keep-alive pool (gateway/upstream.py), anything else over its pooled
aiohttp session. Idempotent requests are retried on another instance when the
connection fails before any response byte; POST and PATCH never are.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

import aiohttp
from starlette.types import Receive, Scope, Send
from yarl import URL

from gateway import metrics
from gateway.edge_auth import EdgeAuth, is_auth_sensitive, is_hashing
from gateway.headers import request_headers, response_headers
from gateway.ratelimit import Decision, RateLimiter
from gateway.routing import Instance, Route, RoutingTable
from gateway.settings import GatewaySettings
from gateway.upstream import (
    ConnectFailed,
    ConnectTimeout,
    UpstreamError,
    UpstreamPool,
)
from services.common import problems
from services.common.admission import Overloaded
from services.common.errors import ProblemError

log = logging.getLogger("gateway.proxy")

# The gateway's own problem types (services.common.problems).
REQUEST_TIMEOUT = problems.register("request-timeout", 408)
UPSTREAM_UNAVAILABLE = problems.register("upstream-unavailable", 503)
CIRCUIT_OPEN = problems.register("circuit-open", 503)
UPSTREAM_TIMEOUT = problems.register("upstream-timeout", 504)
UPSTREAM_UNREACHABLE = problems.register("upstream-unreachable", 502)

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_STATUS_CLASS = {c: f"{c}xx" for c in range(1, 6)}


# How long a worker refuses a hashing route itself after auth shed it: auth's
# Retry-After is whole seconds (>= 1), but what auth admits starts within its wait budget
# (AUTH_HASH_MAX_WAIT_MS, 100 ms), so its queue has drained long before. Refusing for
# the whole Retry-After left the hash pool idle most of each second (logins served in a
# closed-loop storm: 36/s -> 6/s, docs/performance.md); clients still get Retry-After.
EDGE_SHED_SECONDS = 0.1

# Bodies up to this size (by Content-Length) are read whole and sent as one ASGI message
# instead of being streamed chunk by chunk (one pass through the send chain, not two).
WHOLE_BODY_BYTES = 64 * 1024


class RequestBody:
    """The client's body as an async iterator for aiohttp, counted against the limit."""

    def __init__(self, receive: Receive, limit: int, timeout: float) -> None:
        self._receive = receive
        self._limit = limit
        # The whole body must arrive by then: a client trickling bytes (slow loris) is
        # cut off with a 408 instead of holding a socket and an upstream connection.
        self._deadline = time.monotonic() + timeout
        self.started = False
        self.too_large = False
        self.too_slow = False
        self.disconnected = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.started = True
        size = 0
        while True:
            try:
                async with asyncio.timeout(max(0.0, self._deadline - time.monotonic())):
                    message = await self._receive()
            except TimeoutError:
                self.too_slow = True
                raise ValueError("request body too slow") from None
            if message["type"] == "http.disconnect":
                self.disconnected = True
                raise ConnectionResetError("client disconnected")
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self._limit:
                self.too_large = True
                raise ValueError("request body over the limit")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return


def _too_slow(timeout: float) -> ProblemError:
    # The client's fault, not the upstream's: never counted against its circuit.
    return REQUEST_TIMEOUT(
        f"The request body did not arrive within {timeout:g} seconds.",
        headers={"Connection": "close"},
    )


class Answer(Protocol):
    """What the proxy reads of an upstream's answer, from either client."""

    status: int
    raw_headers: Any
    content_length: int | None

    async def read(self) -> bytes: ...
    def iter_chunks(self) -> AsyncIterator[bytes]: ...
    def release(self) -> None: ...


class AiohttpAnswer:
    """aiohttp's response seen through `Answer`."""

    __slots__ = ("_response", "content_length", "raw_headers", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.raw_headers = response.raw_headers
        self.content_length = response.content_length

    async def read(self) -> bytes:
        return await self._response.read()

    def iter_chunks(self) -> AsyncIterator[bytes]:
        return self._response.content.iter_any()

    def release(self) -> None:
        self._response.release()


def _content_type(raw_headers: Any) -> bytes:
    for name, value in raw_headers:
        if name.lower() == b"content-type":
            return bytes(value)
    return b""


def _has_header(raw_headers: Any, wanted: bytes) -> bool:
    return any(name.lower() == wanted for name, _ in raw_headers)


def _header(raw_headers: Any, wanted: bytes) -> bytes:
    for name, value in raw_headers:
        if name.lower() == wanted:
            return bytes(value)
    return b""


def _has_dot_segments(path: str) -> bool:
    # "/api/v1/catalog/../users/me" must not be matched as a catalog read.
    if "/." not in path:  # the common case, without splitting
        return False
    return any(seg in (".", "..") for seg in path.split("/"))


class Proxy:
    def __init__(
        self,
        settings: GatewaySettings,
        table: RoutingTable,
        edge: EdgeAuth | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.settings = settings
        self.table = table
        self.edge = edge  # set at startup (needs the token verifier)
        self.limiter = limiter
        self.session: aiohttp.ClientSession | None = None
        self.lean: UpstreamPool | None = None  # set at startup unless GATEWAY_LEAN_UPSTREAM=false
        self.timeout = aiohttp.ClientTimeout(
            total=settings.total_timeout,
            connect=settings.connect_timeout,
            sock_connect=settings.connect_timeout,
        )

        # Bound metric children per (upstream, route) and (upstream, outcome): `labels()`
        # builds a key under a lock on every call. Both sets are bounded by the table.
        self._durations: dict[tuple[str, str], Any] = {}
        self._outcomes: dict[tuple[str, str], Any] = {}
        # Hashing routes (login, register, password change/reset) whose upstream shed a
        # request (503 `overloaded` + Retry-After): path -> monotonic time until which
        # this worker refuses them itself. Bounded by the few hashing paths.
        self._shed_until: dict[str, float] = {}

    async def forward(self, scope: Scope, receive: Receive, send: Send, route: Route) -> None:
        """Forward a request whose path `route` matched (GatewayEdge matched it already)."""
        path: str = scope["path"]
        method: str = scope["method"]
        if _has_dot_segments(path):
            # The router's own 404 (no registered type): no hint that the prefix exists.
            raise ProblemError(404, f"No resource at {path}")
        scope["route"] = route.scope_route
        headers, seen = request_headers(scope["headers"])
        assert self.edge is not None and self.session is not None
        authorization = seen.get(b"authorization")
        principal = await self.edge.authenticate(
            method, path, authorization.decode("latin-1") if authorization is not None else None
        )
        client = scope.get("client")
        ip = client[0] if client else "unknown"
        decision = await self._rate_limit(
            method, path, principal.user_id if principal else None, ip
        )
        if method == "POST" and self._shed_until:
            # After the rate limit: abuse is counted (429) before capacity is (503).
            self._refuse_if_shed(path)
        body = self._body(scope, receive, seen)
        if principal is not None:
            headers += [
                ("x-user-id", principal.user_id),
                ("x-user-role", principal.role),
                ("x-session-id", principal.session_id),
            ]
        # The client's address alone: uvicorn derived it from the peer, or from a trusted
        # proxy's X-Forwarded-For (FORWARDED_ALLOW_IPS); what the client wrote is dropped.
        headers += [
            ("x-request-id", scope.get("state", {}).get("request_id", "")),
            ("x-forwarded-for", ip),
            ("x-real-ip", ip),
            ("x-forwarded-proto", scope.get("scheme", "http")),
        ]
        if b"host" in seen:
            headers.append(("x-forwarded-host", seen[b"host"].decode("latin-1")))
        await self._forward(scope, send, route, method, headers, body, decision)

    def _body(self, scope: Scope, receive: Receive, seen: dict[bytes, bytes]) -> RequestBody | None:
        limit = self.settings.max_body_bytes
        declared = seen.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                raise ProblemError(400, "Content-Length is not a number.") from None
            if length > limit:  # refused before a byte is read
                raise problems.body_too_large(limit)
            return RequestBody(receive, limit, self.settings.body_timeout) if length > 0 else None
        chunked = any(n.lower() == b"transfer-encoding" for n, _ in scope["headers"])
        return RequestBody(receive, limit, self.settings.body_timeout) if chunked else None

    async def _rate_limit(
        self, method: str, path: str, user_id: str | None, ip: str
    ) -> Decision | None:
        if self.limiter is None:
            return None
        limit, subject = self.limiter.choose(
            sensitive=is_auth_sensitive(method, path), user_id=user_id, ip=ip
        )
        decision = await self.limiter.hit(limit, subject)
        if decision is not None and not decision.allowed:
            headers = {k.decode(): v.decode() for k, v in decision.headers()}
            headers["Retry-After"] = str(decision.reset_seconds)
            raise problems.RATE_LIMITED("Too many requests; try again later.", headers=headers)
        return decision

    def _refuse_if_shed(self, path: str) -> None:
        until = self._shed_until.get(path)
        if until is None:
            return
        left = until - time.monotonic()
        if left <= 0:
            del self._shed_until[path]
            return
        metrics.SHED_AT_EDGE.inc()
        raise Overloaded(
            "Too many sign-ins and password changes right now; try again later.",
            max(1, math.ceil(left)),  # whole seconds, as auth's own
        )

    def _note_shed(self, path: str, raw_headers: Any, body: bytes) -> None:
        """Auth refused a hashing route for capacity: refuse that route here, without a
        trip to auth, for EDGE_SHED_SECONDS (never longer than the Retry-After it gave)."""
        try:
            problem = json.loads(body)
            overloaded = problem.get("type") == problems.OVERLOADED.uri
            retry_after = int(_header(raw_headers, b"retry-after"))
        except (ValueError, AttributeError, TypeError):
            return
        if overloaded and retry_after > 0:
            self._shed_until[path] = time.monotonic() + min(retry_after, EDGE_SHED_SECONDS)

    def _pick(self, route: Route, tried: list[Instance]) -> Instance:
        upstream = route.upstream
        inst = upstream.pick(exclude=tried) or (upstream.pick() if tried else None)
        if inst is not None:
            return inst
        if not upstream.any_healthy:
            retry = max(1, round(self.settings.health_interval))
            raise UPSTREAM_UNAVAILABLE(
                f"No healthy instance of {upstream.name}.", headers={"Retry-After": str(retry)}
            )
        raise CIRCUIT_OPEN(
            f"{upstream.name} is failing; its circuit is open.",
            headers={"Retry-After": str(upstream.retry_after())},
        )

    async def _forward(
        self,
        scope: Scope,
        send: Send,
        route: Route,
        method: str,
        headers: list[tuple[str, str]],
        body: RequestBody | None,
        decision: Decision | None,
    ) -> None:
        assert self.session is not None
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        name = route.upstream.name
        attempts = 1 + self.settings.retries if method in IDEMPOTENT else 1
        tried: list[Instance] = []
        for attempt in range(attempts):
            inst = self._pick(route, tried)
            tried.append(inst)
            start = time.perf_counter()
            try:
                response = await self._send(inst, method, target, headers, body)
            except (aiohttp.ConnectionTimeoutError, ConnectTimeout) as exc:
                self._failed(inst, name, "timeout", exc)
                error = UPSTREAM_TIMEOUT(f"{name} did not accept the connection in time.")
            except TimeoutError as exc:
                self._check_body(body, inst)
                self._failed(inst, name, "timeout", exc)
                raise UPSTREAM_TIMEOUT(f"{name} did not answer in time.") from None
            except (aiohttp.ClientError, UpstreamError, OSError, ValueError) as exc:
                if body is not None and body.disconnected:
                    inst.breaker.release()
                    return  # the client went away; nobody to answer
                self._check_body(body, inst)
                if isinstance(exc, aiohttp.ClientConnectorError | ConnectFailed):
                    inst.set_healthy(False)  # refused: skip it until a health poll says so
                self._failed(inst, name, "unreachable", exc)
                error = UPSTREAM_UNREACHABLE(f"{name} could not be reached.")
            else:
                break
            # Only a request whose body was not consumed can be sent again.
            if attempt + 1 >= attempts or (body is not None and body.started):
                raise error
            metrics.RETRIES.labels(name).inc()
            await asyncio.sleep(self.settings.retry_backoff * (2**attempt))
        try:
            if body is not None and (body.too_large or body.too_slow):  # answered mid-upload
                self._check_body(body, inst)
            self._duration(name, route.label).observe(time.perf_counter() - start)
            status = response.status
            self._outcome(name, _STATUS_CLASS.get(status // 100) or f"{status // 100}xx").inc()
            if status == 503 and _has_header(response.raw_headers, b"retry-after"):
                # A shed (admission control, docs/performance.md): the instance is alive
                # and answering fast. Counting it as a failure would open the circuit and
                # refuse every route of the service (token refresh too) for a login burst.
                inst.breaker.release()
            elif status in (502, 503, 504):
                inst.breaker.record_failure()
            else:
                inst.breaker.record_success()
            if status >= 500 and not _content_type(response.raw_headers).startswith(
                b"application/problem+json"
            ):
                # Not one of our services' problems (a crash page, a proxy's HTML): its
                # body may carry internals, so the client gets the gateway's own problem.
                log.warning("upstream %s answered %d without a problem body", name, status)
                # Its status stays (503 and 500 tell a client different things), so no one
                # registered type fits: `about:blank`, the status is the whole story.
                raise ProblemError(status, f"{name} failed to answer.")
            out = response_headers(response.raw_headers)
            if decision is not None:
                out += decision.headers()
            length = response.content_length
            whole = method != "HEAD" and length is not None and length <= WHOLE_BODY_BYTES
            if whole:
                body_bytes = await response.read()
                if status == 503 and is_hashing(method, scope["path"]):
                    self._note_shed(scope["path"], response.raw_headers, body_bytes)
                await send({"type": "http.response.start", "status": status, "headers": out})
                await send({"type": "http.response.body", "body": body_bytes, "more_body": False})
                return
            await send({"type": "http.response.start", "status": status, "headers": out})
            if method != "HEAD":
                async for chunk in response.iter_chunks():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            response.release()

    async def _send(
        self,
        inst: Instance,
        method: str,
        target: bytes,
        headers: list[tuple[str, str]],
        body: RequestBody | None,
    ) -> Answer:
        if method == "GET" and body is None and self.lean is not None:
            address = self.lean.address(inst.url)
            if address is not None:
                return await self.lean.get(address, target, headers)
        assert self.session is not None
        url = URL(inst.url + target.decode("latin-1"), encoded=True)
        response = await self.session.request(
            method, url, headers=headers, data=body, timeout=self.timeout, allow_redirects=False
        )
        return AiohttpAnswer(response)

    def _check_body(self, body: RequestBody | None, inst: Instance | None = None) -> None:
        if body is not None and (body.too_large or body.too_slow):
            if inst is not None:
                inst.breaker.release()
            if body.too_slow:
                raise _too_slow(self.settings.body_timeout)
            raise problems.body_too_large(self.settings.max_body_bytes)

    def _duration(self, name: str, label: str) -> Any:
        key = (name, label)
        child = self._durations.get(key)
        if child is None:
            child = self._durations[key] = metrics.UPSTREAM_DURATION.labels(name, label)
        return child

    def _outcome(self, name: str, outcome: str) -> Any:
        key = (name, outcome)
        child = self._outcomes.get(key)
        if child is None:
            child = self._outcomes[key] = metrics.UPSTREAM_RESPONSES.labels(name, outcome)
        return child

    def _failed(self, inst: Instance, name: str, outcome: str, exc: BaseException) -> None:
        inst.breaker.record_failure()
        self._outcome(name, outcome).inc()
        log.warning("upstream %s instance %s: %s (%s)", name, inst.url, outcome, type(exc).__name__)
