"""Fixtures of the gateway tests: real upstreams on real sockets, the gateway in-process."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from gateway.app import create_app
from gateway.settings import GatewaySettings
from services import registry
from tests.integration.gateway.upstream import Upstream, start_upstream
from tests.support.infra import Infra
from tests.support.tokens import jwks_fetcher

PREFIXES = {s.name: s.prefixes[0] for s in registry.API_SERVICES}


@pytest.fixture(scope="session")
def upstreams(infra: Infra) -> Iterator[dict[str, Upstream]]:
    """One instance per service, plus a second catalog instance for round robin."""
    started = {name: start_upstream(name, prefix) for name, prefix in PREFIXES.items()}
    started["catalog2"] = start_upstream("catalog2", PREFIXES["catalog"])
    yield started
    for upstream in started.values():
        upstream.server.stop()


@pytest.fixture(autouse=True)
def _reset(request: pytest.FixtureRequest) -> None:
    if "upstreams" in request.fixturenames:
        for upstream in request.getfixturevalue("upstreams").values():
            upstream.behaviour.hits.clear()
            upstream.behaviour.fail_status = None
            upstream.behaviour.healthy = True


def routes_for(ups: dict[str, Upstream], *, two_catalogs: bool = False) -> dict[str, list[str]]:
    catalog = [ups["catalog"].url] + ([ups["catalog2"].url] if two_catalogs else [])
    return {
        "/api/v1/auth": [ups["auth"].url],
        "/.well-known": [ups["auth"].url],
        "/api/v1/users": [ups["users"].url],
        "/api/v1/catalog": catalog,
    }


def make_settings(infra: Infra, routes: dict[str, list[str]], **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "redis_url": infra.redis_url,
        "routes": routes,
        "health_interval": 0.1,
        "connect_timeout": 0.5,
        "total_timeout": 2.0,
        "rate_anonymous": "100000/minute",
        "rate_user": "100000/minute",
        "rate_auth": "100000/minute",
        "cors_origins": ["https://app.example.com"],
        **overrides,
    }
    return GatewaySettings(**values)


def random_ip() -> str:
    return "10." + ".".join(str(random.randint(1, 254)) for _ in range(3))


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[FastAPI]:
    """The app with its lifespan running (clients are made with `client_for`)."""
    async with app.router.lifespan_context(app):
        yield app


def client_for(app: FastAPI, ip: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://gw.test")


@asynccontextmanager
async def gateway(
    settings: GatewaySettings, ip: str = "127.0.0.1"
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, jwks_fetcher=jwks_fetcher)
    async with serving(app), client_for(app, ip) as client:
        yield client


@pytest.fixture
async def redis(infra: Infra) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(infra.redis_url)
    yield client
    await client.aclose()


def sent_headers(echo: dict[str, Any]) -> dict[str, list[str]]:
    """The headers the upstream received, name -> every value in order."""
    out: dict[str, list[str]] = {}
    for name, value in echo["headers"]:
        out.setdefault(name, []).append(value)
    return out
