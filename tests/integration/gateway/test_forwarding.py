"""What crosses the gateway: headers, query strings, bodies, request ids, CORS, security headers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.app import create_app
from tests.integration.gateway.conftest import gateway, make_settings, routes_for, sent_headers
from tests.integration.gateway.upstream import ServerThread, Upstream
from tests.support.infra import Infra
from tests.support.tokens import jwks_fetcher


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "aiohttp"])
async def test_hop_by_hop_headers_are_dropped_both_ways(
    infra: Infra, upstreams: dict[str, Upstream], lean: bool
) -> None:
    headers = [
        ("Connection", "keep-alive, X-Secret-Hop"),
        ("X-Secret-Hop", "1"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Trailer", "X-T"),
        ("Upgrade", "websocket"),
        ("Proxy-Authorization", "Basic eDp5"),
        ("X-Kept", "yes"),
    ]
    async with gateway(make_settings(infra, routes_for(upstreams), lean_upstream=lean)) as client:
        response = await client.get("/api/v1/catalog/echo", headers=headers)
        cookies = await client.get("/api/v1/catalog/cookies")
    received = sent_headers(response.json())
    for name in ("x-secret-hop", "keep-alive", "te", "trailer", "upgrade", "proxy-authorization"):
        assert name not in received, name
    assert received["x-kept"] == ["yes"]
    assert "proxy-authenticate" not in cookies.headers
    assert "keep-alive" not in cookies.headers


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "aiohttp"])
async def test_repeated_headers_query_strings_and_cookies_are_intact(
    infra: Infra, upstreams: dict[str, Upstream], lean: bool
) -> None:
    query = "a=1&a=2&b=x%20y&c=%2F&empty="
    async with gateway(make_settings(infra, routes_for(upstreams), lean_upstream=lean)) as client:
        response = await client.get(
            f"/api/v1/catalog/some%20thing?{query}",
            headers=[("X-Multi", "one"), ("X-Multi", "two")],
        )
        cookies = await client.get("/api/v1/catalog/cookies")
    echo = response.json()
    assert echo["query"] == query
    assert echo["raw_path"] == "/api/v1/catalog/some%20thing"
    assert sent_headers(echo)["x-multi"] == ["one", "two"]
    set_cookies = cookies.headers.get_list("set-cookie")
    assert len(set_cookies) == 2
    assert set_cookies[0].startswith("a=1") and set_cookies[1].startswith("b=2")


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "aiohttp"])
async def test_request_id_and_forwarding_headers(
    infra: Infra, upstreams: dict[str, Upstream], lean: bool
) -> None:
    async with gateway(make_settings(infra, routes_for(upstreams), lean_upstream=lean)) as client:
        given = await client.get(
            "/api/v1/catalog/echo",
            headers={
                "X-Request-ID": "req-abc-123",
                "X-Forwarded-For": "203.0.113.9",
                "X-Forwarded-Host": "evil.example",
                "X-Forwarded-Proto": "gopher",
                "X-Real-IP": "203.0.113.10",
            },
        )
        made = await client.get("/api/v1/catalog/echo")
    received = sent_headers(given.json())
    assert received["x-request-id"] == ["req-abc-123"]
    assert given.headers.get_list("x-request-id") == ["req-abc-123"]  # once, not twice
    # The client's own X-Forwarded-For/X-Real-IP are dropped: only the address the
    # gateway settled on goes upstream (auth keys its per-IP limits on it).
    assert received["x-forwarded-for"] == ["127.0.0.1"]
    assert received["x-real-ip"] == ["127.0.0.1"]
    assert received["x-forwarded-host"] == ["gw.test"]
    assert received["x-forwarded-proto"] == ["http"]
    generated = sent_headers(made.json())["x-request-id"]
    assert len(generated) == 1 and generated[0] == made.headers["x-request-id"]


async def _chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        chunk = b"x" * min(size, total - sent)
        sent += len(chunk)
        yield chunk


async def test_body_limit_declared_and_streamed(
    infra: Infra, upstreams: dict[str, Upstream]
) -> None:
    settings = make_settings(infra, routes_for(upstreams), max_body_bytes=256 * 1024)
    async with gateway(settings) as client:
        declared = await client.post("/api/v1/auth/register", content=b"y" * (300 * 1024))
        hits_after_declared = upstreams["auth"].behaviour.count()
        streamed = await client.post("/api/v1/auth/register", content=_chunks(400 * 1024))
        fits = await client.post("/api/v1/auth/register", content=_chunks(200 * 1024))
    assert declared.status_code == 413
    assert declared.headers["content-type"] == "application/problem+json"
    assert hits_after_declared == 0  # refused before the upstream saw anything
    assert streamed.status_code == 413
    assert streamed.headers["content-type"] == "application/problem+json"
    assert fits.status_code == 200
    assert fits.json()["body_size"] == 200 * 1024


async def test_security_headers_and_no_store_on_auth(
    infra: Infra, upstreams: dict[str, Upstream]
) -> None:
    async with gateway(make_settings(infra, routes_for(upstreams))) as client:
        proxied = await client.get("/api/v1/catalog/echo")
        auth = await client.post("/api/v1/auth/refresh", json={})
        own = await client.get("/healthz")
        docs = await client.get("/docs")
    for r in (proxied, auth, own, docs):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["strict-transport-security"].startswith("max-age=")
    assert proxied.headers["content-security-policy"].startswith("default-src 'none'")
    # Swagger UI from the gateway itself: no other origin, no inline script.
    docs_csp = docs.headers["content-security-policy"]
    assert "script-src 'self';" in docs_csp
    assert "http" not in docs_csp and "unsafe-inline" not in docs_csp
    assert auth.headers["cache-control"] == "no-store"
    assert "cache-control" not in proxied.headers


async def test_cors_preflight_allowed_origin_only(
    infra: Infra, upstreams: dict[str, Upstream]
) -> None:
    request = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    async with gateway(make_settings(infra, routes_for(upstreams))) as client:
        ok = await client.options(
            "/api/v1/users/me", headers={"Origin": "https://app.example.com", **request}
        )
        bad = await client.options(
            "/api/v1/users/me", headers={"Origin": "https://evil.example", **request}
        )
        simple = await client.get(
            "/api/v1/catalog/echo", headers={"Origin": "https://app.example.com"}
        )
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "https://app.example.com"
    assert ok.headers["access-control-allow-credentials"] == "true"
    assert bad.status_code == 400
    assert "access-control-allow-origin" not in bad.headers
    assert simple.headers["access-control-allow-origin"] == "https://app.example.com"
    assert upstreams["users"].behaviour.count() == 0  # preflights end at the edge


@pytest.mark.parametrize(
    ("path", "header"),
    [("/api/v1/auth/login", "x-device-token"), ("/api/v1/catalog/products", "idempotency-key")],
)
async def test_cors_preflight_allows_the_services_own_request_headers(
    infra: Infra, upstreams: dict[str, Upstream], path: str, header: str
) -> None:
    """A web app on another origin sends auth's device token and catalog's idempotency
    key: a preflight asking for either is allowed (Starlette answers 400 otherwise)."""
    async with gateway(make_settings(infra, routes_for(upstreams))) as client:
        response = await client.options(
            path,
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": f"content-type, {header}",
            },
        )
    assert response.status_code == 200, response.text
    allowed = response.headers["access-control-allow-headers"].lower()
    assert header in {name.strip() for name in allowed.split(",")}


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "aiohttp"])
async def test_vary_origin_merged_with_and_without_an_origin(
    infra: Infra, upstreams: dict[str, Upstream], lean: bool
) -> None:
    """GatewayEdge adds to a request without Origin what Starlette's CORS adds (Vary:
    Origin, merged into the upstream's Vary); a browser request still goes through it."""
    async with gateway(make_settings(infra, routes_for(upstreams), lean_upstream=lean)) as client:
        plain = await client.get("/api/v1/catalog/vary")
        browser = await client.get(
            "/api/v1/catalog/vary", headers={"Origin": "https://app.example.com"}
        )
        other = await client.get("/api/v1/catalog/vary", headers={"Origin": "https://evil.example"})
    for response in (plain, browser, other):
        assert response.status_code == 200
        assert response.headers.get_list("vary") == ["Accept-Language, Origin"]
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-request-id"]
    assert "access-control-allow-origin" not in plain.headers
    assert browser.headers["access-control-allow-origin"] == "https://app.example.com"
    assert browser.headers["access-control-expose-headers"].startswith("X-Request-ID")
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "aiohttp"])
async def test_streams_the_response_under_a_real_server(
    infra: Infra, upstreams: dict[str, Upstream], lean: bool
) -> None:
    """The first chunk reaches the client before the upstream has finished."""
    settings = make_settings(infra, routes_for(upstreams), lean_upstream=lean)
    app = create_app(settings, jwks_fetcher=jwks_fetcher)
    server = ServerThread(app).start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as client:
            start = time.perf_counter()
            async with client.stream("GET", "/api/v1/catalog/stream") as response:
                chunks = []
                async for chunk in response.aiter_raw():
                    chunks.append((chunk, time.perf_counter() - start))
        assert response.status_code == 200
        assert b"".join(c for c, _ in chunks) == b"first-chunk\nsecond-chunk\n"
        assert chunks[0][0].startswith(b"first-chunk")
        assert chunks[0][1] < 0.5  # the upstream waits 0.6 s before its second chunk
    finally:
        server.stop()
