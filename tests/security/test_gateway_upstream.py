"""The gateway against a hostile or broken upstream and a hostile client, in-process
over a real upstream socket.

API10 (unsafe consumption of APIs): an upstream's crash page never reaches the client;
its Server header does not either. Hop-by-hop headers both ways are covered by
tests/integration/gateway/test_forwarding.py::test_hop_by_hop_headers_are_dropped_both_ways.
API4: a client trickling its body is cut off with a 408, and that is not counted against
the upstream's circuit breaker (else a few slow clients could open it for everyone)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from gateway.app import create_app
from gateway.settings import GatewaySettings
from tests.integration.gateway.upstream import ServerThread
from tests.security.support import is_problem
from tests.support.infra import Infra
from tests.support.tokens import bearer, jwks_fetcher, mint

SECRET = "postgresql://shop:hunter2@db.internal/shop"
PREFIX = "/api/v1/catalog"


def _hostile_upstream() -> FastAPI:
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(f"{PREFIX}/crash")
    async def crash() -> PlainTextResponse:
        page = f"Traceback (most recent call last):\n  File app.py\nKeyError: {SECRET}"
        return PlainTextResponse(page, status_code=500, headers={"Server": "gunicorn/19.1"})

    @app.get(f"{PREFIX}/html-502")
    async def html() -> PlainTextResponse:
        return PlainTextResponse(
            f"<html>nginx {SECRET}</html>", status_code=502, media_type="text/html"
        )

    @app.get(f"{PREFIX}/problem")
    async def problem() -> JSONResponse:
        return JSONResponse(
            {"type": "about:blank", "title": "Service Unavailable", "status": 503},
            status_code=503,
            media_type="application/problem+json",
        )

    @app.get(f"{PREFIX}/ok")
    async def ok() -> PlainTextResponse:
        return PlainTextResponse("fine", headers={"Server": "gunicorn/19.1"})

    @app.post(f"{PREFIX}/upload")
    async def upload(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    return app


@pytest.fixture(scope="module")
def upstream() -> Iterator[ServerThread]:
    server = ServerThread(_hostile_upstream(), lifespan="off").start()
    yield server
    server.stop()


def _settings(infra: Infra, upstream: ServerThread, **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "redis_url": infra.redis_url,
        "routes": {PREFIX: [upstream.url]},
        "rate_limit_enabled": False,
        "health_interval": 0.2,
        "retries": 0,
        **overrides,
    }
    return GatewaySettings(**values)


async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as client:
            yield client


async def test_upstream_crash_pages_are_replaced_by_a_problem(
    infra: Infra, upstream: ServerThread
) -> None:
    app = create_app(_settings(infra, upstream), jwks_fetcher=jwks_fetcher)
    async for client in _client(app):
        crash = await client.get(f"{PREFIX}/crash")
        html = await client.get(f"{PREFIX}/html-502")
        problem = await client.get(f"{PREFIX}/problem")
        ok = await client.get(f"{PREFIX}/ok")
    for response, status in ((crash, 500), (html, 502)):
        assert is_problem(response, status), response.text
        assert "hunter2" not in response.text and "Traceback" not in response.text
        assert "nginx" not in response.text
    assert is_problem(problem, 503)  # our services' problems pass through as they are
    assert problem.json()["title"] == "Service Unavailable"
    assert ok.text == "fine"
    for response in (crash, ok):
        assert "gunicorn" not in response.headers.get("server", "")


async def test_slow_body_gets_408_and_spares_the_circuit(
    infra: Infra, upstream: ServerThread
) -> None:
    settings = _settings(infra, upstream, body_timeout=0.3, circuit_failures=2)
    app = create_app(settings, jwks_fetcher=jwks_fetcher)

    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"x"
            await asyncio.sleep(0.2)

    user = bearer(mint())
    async for client in _client(app):
        slow = [
            await client.post(
                f"{PREFIX}/upload", content=trickle(), headers={"Content-Length": "20", **user}
            )
            for _ in range(3)
        ]
        fast = await client.post(f"{PREFIX}/upload", content=b"y" * 20, headers=user)
        after = await client.get(f"{PREFIX}/ok")
    for response in slow:
        assert is_problem(response, 408), response.text
        assert response.headers["connection"] == "close"
    assert fast.json() == {"size": 20}
    assert after.status_code == 200  # three slow clients did not open the circuit
