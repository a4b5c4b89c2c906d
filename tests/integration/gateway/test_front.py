"""The gateway's stack (gateway/edge.py): proxied requests never meet FastAPI's own
layers, and lose nothing by it (errors are still problem+json with a request id)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.middleware.gzip import GZipMiddleware

from gateway.app import create_app
from gateway.proxy import Proxy
from tests.integration.gateway.conftest import (
    client_for,
    make_settings,
    routes_for,
    sent_headers,
    serving,
)
from tests.integration.gateway.upstream import Upstream
from tests.support.infra import Infra
from tests.support.tokens import jwks_fetcher


@pytest.fixture
def outer_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, str]]:
    """(app, path) of the requests that went through FastAPI's exception layer."""
    calls: list[tuple[Any, str]] = []
    original = ExceptionMiddleware.__call__

    async def counting(self: ExceptionMiddleware, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            calls.append((scope["app"], scope["path"]))
        await original(self, scope, receive, send)

    monkeypatch.setattr(ExceptionMiddleware, "__call__", counting)
    return calls


async def test_proxied_paths_skip_the_outer_layers_own_paths_do_not(
    infra: Infra, upstreams: dict[str, Upstream], outer_calls: list[tuple[Any, str]]
) -> None:
    app = create_app(make_settings(infra, routes_for(upstreams)), jwks_fetcher=jwks_fetcher)
    async with serving(app), client_for(app) as client:
        proxied = await client.get("/api/v1/catalog/echo")
        own = await client.get("/healthz")
        unknown = await client.get("/nowhere")
    assert proxied.status_code == 200 and proxied.json()["path"] == "/api/v1/catalog/echo"
    assert proxied.headers["x-request-id"] and proxied.headers["x-frame-options"] == "DENY"
    assert own.status_code == 200
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    # (the upstreams run in this process too: their calls are not the gateway's)
    assert [path for owner, path in outer_calls if owner is app] == ["/healthz", "/nowhere"]


async def test_an_unexpected_proxy_error_is_a_problem_500_with_a_request_id(
    infra: Infra, upstreams: dict[str, Upstream], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: Proxy, *args: Any) -> None:  # a bug we cannot cause otherwise
        raise RuntimeError("bug in the proxy")

    monkeypatch.setattr(Proxy, "forward", broken)
    app = create_app(make_settings(infra, routes_for(upstreams)), jwks_fetcher=jwks_fetcher)
    async with serving(app), client_for(app) as client:
        response = await client.get("/api/v1/catalog/echo", headers={"X-Request-ID": "rid-42"})
        after = await client.get("/healthz")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "rid-42"
    assert "bug in the proxy" not in response.text
    assert after.status_code == 200


async def test_an_unexpected_error_in_an_own_route_is_a_problem_500_with_a_request_id(
    infra: Infra, upstreams: dict[str, Upstream]
) -> None:
    app = create_app(make_settings(infra, routes_for(upstreams)), jwks_fetcher=jwks_fetcher)

    @app.get("/broken")
    async def broken() -> None:  # a bug we cannot cause otherwise
        raise RuntimeError("bug in an own route")

    async with serving(app), client_for(app) as client:
        response = await client.get("/broken", headers={"X-Request-ID": "rid-43"})
        after = await client.get("/healthz")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "rid-43"
    assert response.json()["request_id"] == "rid-43"
    assert "bug in an own route" not in response.text
    assert after.status_code == 200


async def test_a_middleware_added_after_the_first_proxied_request_is_refused(
    infra: Infra, upstreams: dict[str, Upstream]
) -> None:
    app = create_app(make_settings(infra, routes_for(upstreams)), jwks_fetcher=jwks_fetcher)
    async with serving(app), client_for(app) as client:
        assert (await client.get("/api/v1/catalog/echo")).status_code == 200
    with pytest.raises(RuntimeError):
        app.add_middleware(GZipMiddleware)


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "aiohttp"])
async def test_a_proxied_request_is_still_traced(
    infra: Infra, upstreams: dict[str, Upstream], lean: bool
) -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    exporter = InMemorySpanExporter()
    settings = make_settings(infra, routes_for(upstreams), lean_upstream=lean)
    app = create_app(settings, jwks_fetcher=jwks_fetcher, span_exporter=exporter)
    trace = "5ac92f3577b34da6a3ce929d0e0e4742"
    async with serving(app), client_for(app) as client:
        response = await client.get(
            "/api/v1/catalog/echo", headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"}
        )
    assert response.status_code == 200
    ours = [s for s in exporter.get_finished_spans() if format(s.context.trace_id, "032x") == trace]
    kinds = {s.kind for s in ours}
    # The gateway's server span (the OpenTelemetry middleware is on the lane) and the
    # upstream call's client span, both in the caller's trace; the upstream got it too,
    # once, with the client span as its parent (not the caller's span id).
    assert SpanKind.SERVER in kinds and SpanKind.CLIENT in kinds, ours
    (traceparent,) = sent_headers(response.json())["traceparent"]
    client_span = next(s for s in ours if s.kind == SpanKind.CLIENT)
    assert traceparent == f"00-{trace}-{client_span.context.span_id:016x}-01"
