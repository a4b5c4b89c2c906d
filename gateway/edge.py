"""The gateway's ASGI stack: its FastAPI app, and the per-request edge in one pass
(security headers, CORS, the dispatch of routed prefixes to the proxy).

GatewayApi stacks the user middleware (tracing, request id, log line and metrics, this
edge) outside FastAPI's own layers instead of inside them: a proxied request is handed
to the proxy by the edge and never meets those layers, which only the gateway's own
routes (/healthz, /metrics, /docs...) need. FastAPI's outermost layer
(ServerErrorMiddleware) is left out: ObservabilityMiddleware, now outermost, gives the
same problem+json 500 with the request id on every path.

GatewayEdge does in one `send` wrapper what three stacked middlewares (security headers,
Starlette's CORS, the dispatch) did in three, each rebuilding the header list. A request
without an Origin header (every non-browser call) gets the headers Starlette's
CORSMiddleware would add (only `Vary: Origin`) from one precomputed pass; a request with
an Origin header still goes through Starlette's CORSMiddleware, so preflights and origin
checks are Starlette's. The measured cost of each layer is in docs/performance.md.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.proxy import Proxy
from gateway.security_headers import API_CSP, DOCS_CSP, NO_STORE_PREFIXES
from services.common.errors import ProblemError, problem_response

_VARY = b"vary"
_CSP = b"content-security-policy"
_NO_STORE_DROP = frozenset({b"cache-control", b"pragma"})
# What only operators may read: metric series name upstream instances, readiness says
# which dependency is down and when rate limiting fails open.
OPERATOR_PATHS = frozenset({"/metrics", "/readyz"})


class GatewayApi(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        user, self.user_middleware = self.user_middleware, []
        try:
            inner = super().build_middleware_stack()
        finally:
            self.user_middleware = user
        assert isinstance(inner, ServerErrorMiddleware)
        app: ASGIApp = inner.app  # ObservabilityMiddleware answers unexpected errors
        for cls, args, kwargs in reversed(user):  # as Starlette stacks them
            app = cls(app, *args, **kwargs)
        return app


class GatewayEdge:
    def __init__(
        self,
        app: ASGIApp,
        *,
        proxy: Proxy,
        own_paths: frozenset[str],
        hsts_seconds: int,
        cors: dict[str, Any],
        operator_port: int | None = None,
        operator_networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
    ) -> None:
        self.app = app
        self.proxy = proxy
        self.own_paths = own_paths
        self.operator_port = operator_port
        self.operator_networks = tuple(operator_networks)
        fixed = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
        ]
        if hsts_seconds > 0:
            fixed.append(
                (
                    b"strict-transport-security",
                    f"max-age={hsts_seconds}; includeSubDomains".encode(),
                )
            )
        names = frozenset(n for n, _ in fixed) | {_CSP}
        # Per kind of path: (names dropped from the inner response, headers appended).
        self._api = (names, [*fixed, (_CSP, API_CSP)])
        self._docs = (names, [*fixed, (_CSP, DOCS_CSP)])
        self._no_store = (
            names | _NO_STORE_DROP,
            [*fixed, (_CSP, API_CSP), (b"cache-control", b"no-store")],
        )
        # Browser requests (an Origin header): Starlette's CORS, between us and the app.
        self._cors = CORSMiddleware(self._dispatch, **cors)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path in OPERATOR_PATHS and not self._operator(scope):
            # As if it did not exist: no hint that an operator endpoint is there.
            await problem_response(404, detail=f"No resource at {path}", instance=path)(
                scope, receive, send
            )
            return
        if path.startswith(NO_STORE_PREFIXES):
            drop, extra = self._no_store
        elif path.startswith("/docs"):
            drop, extra = self._docs
        else:
            drop, extra = self._api
        browser = any(name == b"origin" for name, _ in scope["headers"])

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = []
                vary: list[bytes] = []
                for name, value in message.get("headers", ()):
                    lower = name.lower()
                    if lower in drop:
                        continue
                    if lower == _VARY and not browser:
                        vary.append(value)
                        continue
                    headers.append((name, value))
                if not browser:
                    # What CORSMiddleware adds to a request without an Origin header.
                    vary.append(b"Origin")
                    headers.append((_VARY, b", ".join(vary)))
                headers += extra
                message = {**message, "headers": headers}
            await send(message)

        if browser:
            await self._cors(scope, receive, send_secured)
        else:
            await self._dispatch(scope, receive, send_secured)

    def _operator(self, scope: Scope) -> bool:
        """Came in on the operator listener, or from an operator network. The client is
        the one uvicorn settled on (X-Forwarded-For only from FORWARDED_ALLOW_IPS)."""
        server = scope.get("server")
        if self.operator_port is not None and server and server[1] == self.operator_port:
            return True
        client = scope.get("client")
        if not client:
            return False
        try:
            address = ipaddress.ip_address(client[0])
        except ValueError:
            return False
        return any(address in network for network in self.operator_networks)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Routed prefixes straight to the proxy (no FastAPI layers, no router); the
        gateway's own paths to FastAPI."""
        path: str = scope["path"]
        route = None if path in self.own_paths else self.proxy.table.match(path)
        if route is None:
            await self.app(scope, receive, send)
            return
        try:
            await self.proxy.forward(scope, receive, send, route)
        except ProblemError as exc:
            response = problem_response(
                exc.status,
                detail=exc.detail,
                type_=exc.type,
                title=exc.title,
                instance=path,
                headers=exc.headers,
                extra=exc.extra,
            )
            await response(scope, receive, send)
