"""Rate limits in Redis, shared by two gateway apps (= two workers or two replicas)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI

from gateway.app import create_app
from gateway.ratelimit import Limit, RateLimiter
from gateway.settings import GatewaySettings
from tests.integration.gateway.conftest import (
    client_for,
    make_settings,
    random_ip,
    routes_for,
    serving,
)
from tests.integration.gateway.upstream import Upstream
from tests.support.infra import Infra
from tests.support.tokens import bearer, jwks_fetcher, mint


@asynccontextmanager
async def two_gateways(settings: GatewaySettings) -> AsyncIterator[tuple[FastAPI, FastAPI]]:
    async with AsyncExitStack() as stack:
        apps = []
        for _ in range(2):
            app = create_app(settings, jwks_fetcher=jwks_fetcher)
            await stack.enter_async_context(serving(app))
            apps.append(app)
        yield apps[0], apps[1]


async def test_anonymous_limit_is_shared_by_two_gateways(
    infra: Infra, upstreams: dict[str, Upstream]
) -> None:
    settings = make_settings(infra, routes_for(upstreams), rate_anonymous="3/minute")
    ip, other_ip = random_ip(), random_ip()
    async with two_gateways(settings) as (one, two):
        async with (
            client_for(one, ip) as a,
            client_for(two, ip) as b,
            client_for(two, other_ip) as c,
        ):
            responses = [await (a if i % 2 == 0 else b).get("/api/v1/catalog/p") for i in range(4)]
            other = await c.get("/api/v1/catalog/p")
            again = await a.get("/api/v1/catalog/p")  # refused locally, no Redis trip
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r.headers["ratelimit-remaining"] for r in responses] == ["2", "1", "0", "0"]
    assert all(r.headers["ratelimit-limit"] == "3" for r in responses)
    assert 1 <= int(responses[0].headers["ratelimit-reset"]) <= 60
    limited = responses[3]
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.json()["status"] == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert other.status_code == 200
    assert again.status_code == 429 and 1 <= int(again.headers["retry-after"]) <= 60
    assert upstreams["catalog"].behaviour.count() == 4  # the 429 never reached it


async def test_authenticated_traffic_is_limited_per_user(
    infra: Infra, upstreams: dict[str, Upstream]
) -> None:
    settings = make_settings(infra, routes_for(upstreams), rate_user="2/minute")
    alice, bob = bearer(mint()), bearer(mint())
    ip = random_ip()  # same address for both users: the key is the user
    async with two_gateways(settings) as (one, two):
        async with client_for(one, ip) as a, client_for(two, ip) as b:
            first = [
                await a.get("/api/v1/users/me", headers=alice),
                await b.get("/api/v1/users/me", headers=alice),
            ]
            third = await a.get("/api/v1/users/me", headers=alice)
            for_bob = await b.get("/api/v1/users/me", headers=bob)
    assert [r.status_code for r in first] == [200, 200]
    assert third.status_code == 429
    assert for_bob.status_code == 200


async def test_credential_endpoints_have_a_tighter_limit(
    infra: Infra, upstreams: dict[str, Upstream]
) -> None:
    settings = make_settings(
        infra, routes_for(upstreams), rate_auth="2/minute", rate_anonymous="50/minute"
    )
    async with two_gateways(settings) as (one, _two):
        async with client_for(one, random_ip()) as client:
            logins = [await client.post("/api/v1/auth/login", json={}) for _ in range(3)]
            read = await client.get("/api/v1/catalog/p")
        async with client_for(one) as operator:  # /metrics: operators only (loopback)
            metrics = (await operator.get("/metrics")).text
    assert [r.status_code for r in logins] == [200, 200, 429]
    assert upstreams["auth"].behaviour.count("POST", "/login") == 2  # the 429 never reached it
    assert logins[2].headers["cache-control"] == "no-store"
    assert read.status_code == 200
    assert read.headers["ratelimit-limit"] == "50"
    assert 'rate_limit_rejections_total{limit="gateway_auth"}' in metrics


async def test_batched_counting_is_exact_under_concurrency(redis: aioredis.Redis) -> None:
    limiter = RateLimiter(
        redis,
        anonymous=Limit("t_anon", 25, 60),
        user=Limit("t_user", 25, 60),
        auth=Limit("t_auth", 25, 60),
    )
    ip = random_ip()
    decisions = await asyncio.gather(*(limiter.hit(limiter.anonymous, ip) for _ in range(40)))
    assert all(d is not None for d in decisions)
    allowed = [d for d in decisions if d is not None and d.allowed]
    assert len(allowed) == 25
    assert sorted(d.remaining for d in allowed) == list(range(25))
    # Redis lost its scripts (restart, SCRIPT FLUSH): loaded again, counting goes on.
    await redis.script_flush()
    other = random_ip()
    first = await limiter.hit(limiter.anonymous, other)
    assert first is not None and first.allowed and first.remaining == 24
