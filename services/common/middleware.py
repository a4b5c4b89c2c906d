"""Pure-ASGI middleware: request ids, access logs and Prometheus metrics in one pass.

Pure ASGI (not BaseHTTPMiddleware) keeps the per-request overhead small and
lets streaming bodies through untouched.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common import metrics
from services.common.context import request_id_var, route_var, user_id_var
from services.common.errors import problem_response

REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
_QUIET_PATHS = {"/healthz", "/readyz", "/metrics"}

access_log = logging.getLogger("access")
log = logging.getLogger("services.errors")


@dataclass(frozen=True, slots=True)
class RouteLabel:
    """A route template for `scope["route"]`, set by a fast path that bypasses the
    router (the gateway's proxy, a service's direct read) so metrics and logs still
    see the template, never the raw path."""

    path: str


def route_template(scope: Scope) -> str:
    """The matched route's template ("/api/v1/items/{id}"), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "<unmatched>"


# Bound metric children per label set: `.labels()` builds and looks up a key tuple under
# a lock on every call, which showed up in profiles of the cached read (a few % per
# request). Label sets are bounded (method x route template x status), so is this.
_in_progress: dict[str, Any] = {}
_per_route: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def _gauge(method: str) -> Any:
    child = _in_progress.get(method)
    if child is None:
        child = _in_progress[method] = metrics.HTTP_IN_PROGRESS.labels(method)
    return child


def _route_metrics(method: str, template: str, status: int) -> tuple[Any, Any]:
    key = (method, template, status)
    children = _per_route.get(key)
    if children is None:
        children = _per_route[key] = (
            metrics.HTTP_REQUESTS.labels(method, template, str(status)),
            metrics.HTTP_DURATION.labels(method, template),
        )
    return children


def incoming_request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER and _VALID_REQUEST_ID.match(value):
            return value.decode("ascii")
    return uuid.uuid4().hex


class ObservabilityMiddleware:
    """Gives each request an id, logs one JSON line for it and counts it in Prometheus."""

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = incoming_request_id(scope)
        rid_token = request_id_var.set(request_id)
        uid_token = user_id_var.set(None)
        route_token = route_var.set(None)
        scope.setdefault("state", {})["request_id"] = request_id
        method = scope["method"]
        status = 500
        start = time.perf_counter()
        in_progress = _gauge(method)
        in_progress.inc()

        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = list(message.get("headers", ()))
                headers.append((REQUEST_ID_HEADER, request_id.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Answered here, inside the request context, so the 500 carries the request id.
            if started:
                raise
            log.exception("unhandled error", extra={"path": scope["path"]})
            response = problem_response(
                500, detail="An unexpected error occurred.", instance=scope["path"]
            )
            await response(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            template = route_template(scope)
            route_var.set(template)
            in_progress.dec()
            requests, duration = _route_metrics(method, template, status)
            requests.inc()
            duration.observe(elapsed)
            if scope["path"] not in _QUIET_PATHS:
                extra: dict[str, Any] = {
                    "method": method,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                }
                access_log.info("%s %s %s", method, template, status, extra=extra)
            request_id_var.reset(rid_token)
            user_id_var.reset(uid_token)
            route_var.reset(route_token)
