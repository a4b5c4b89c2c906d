"""Upstream failures: fast 502/503, 504 on slowness, retries, circuit breaker, round robin."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway import proxy as proxy_module
from gateway.app import create_app
from services.common import problems
from tests.integration.gateway.conftest import (
    client_for,
    gateway,
    make_settings,
    routes_for,
    serving,
)
from tests.integration.gateway.upstream import Behaviour, DroppingServer, Upstream, start_upstream
from tests.support.infra import Infra
from tests.support.polling import eventually
from tests.support.tokens import bearer, jwks_fetcher, mint


def _gauge(metrics: str, name: str, instance: str) -> str:
    prefix = f'{name}{{instance="{instance}",upstream="catalog"}} '
    values = [line[len(prefix) :] for line in metrics.splitlines() if line.startswith(prefix)]
    assert len(values) == 1, metrics
    return values[0]


async def test_killed_upstream_fails_fast_and_recovers(
    infra: Infra, upstreams: dict[str, Upstream]
) -> None:
    own = start_upstream("users", "/api/v1/users")
    routes = {**routes_for(upstreams), "/api/v1/users": [own.url]}
    token = bearer(mint())
    try:
        async with gateway(make_settings(infra, routes)) as client:
            assert (await client.get("/api/v1/users/me", headers=token)).status_code == 200
            own.server.stop()
            start = time.perf_counter()
            down = [await client.get("/api/v1/users/me", headers=token) for _ in range(3)]
            elapsed = time.perf_counter() - start
            assert {r.status_code for r in down} <= {502, 503}
            assert all(r.headers["content-type"] == "application/problem+json" for r in down)
            assert elapsed < 2.0  # fast, never a hang
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["upstream:users"] == "down"
            own.server.start()  # same port

            async def recovered() -> bool:
                answer = await client.get("/api/v1/users/me", headers=token)
                return answer.status_code == 200

            await eventually(recovered, timeout=5, interval=0.1, what="recovered")
            assert (await client.get("/readyz")).status_code == 200
    finally:
        own.server.stop()


async def test_slow_upstream_is_504_within_the_timeout(
    infra: Infra, upstreams: dict[str, Upstream]
) -> None:
    settings = make_settings(infra, routes_for(upstreams), total_timeout=0.5)
    async with gateway(settings) as client:
        start = time.perf_counter()
        response = await client.get("/api/v1/catalog/slow?s=3")
        elapsed = time.perf_counter() - start
    assert response.status_code == 504
    assert response.headers["content-type"] == "application/problem+json"
    assert 0.4 < elapsed < 1.5
    assert upstreams["catalog"].behaviour.count() == 1  # a timeout is not retried


async def test_retries_only_idempotent_methods(
    infra: Infra, upstreams: dict[str, Upstream]
) -> None:
    dropping = DroppingServer().start()
    routes = {**routes_for(upstreams), "/api/v1/users": [dropping.url]}
    settings = make_settings(infra, routes, retries=2, retry_backoff=0.01, circuit_failures=100)
    token = bearer(mint())
    try:
        async with gateway(settings) as client:
            got = await client.get("/api/v1/users/me", headers=token)
            gets = dropping.hits
            put = await client.put("/api/v1/users/me", headers=token)
            puts = dropping.hits - gets
            posted = await client.post("/api/v1/users/me", headers=token)
            posts = dropping.hits - gets - puts
            patched = await client.patch("/api/v1/users/me", headers=token)
            patches = dropping.hits - gets - puts - posts
    finally:
        dropping.stop()
    assert [r.status_code for r in (got, put, posted, patched)] == [502] * 4
    assert (gets, puts) == (3, 3)  # 1 try + 2 retries
    assert (posts, patches) == (1, 1)  # never retried


async def test_retry_moves_to_the_other_instance(
    infra: Infra, upstreams: dict[str, Upstream]
) -> None:
    dropping = DroppingServer().start()
    routes = {**routes_for(upstreams), "/api/v1/users": [dropping.url, upstreams["users"].url]}
    settings = make_settings(infra, routes, retry_backoff=0.01, circuit_failures=100)
    try:
        async with gateway(settings) as client:
            responses = [
                await client.get("/api/v1/users/me", headers=bearer(mint())) for _ in range(4)
            ]
    finally:
        dropping.stop()
    assert [r.status_code for r in responses] == [200] * 4
    assert dropping.hits >= 1  # it was tried, and the retry went to the healthy one


async def test_circuit_opens_then_half_open_probe_closes_it(
    infra: Infra, upstreams: dict[str, Upstream]
) -> None:
    catalog = upstreams["catalog"].behaviour
    settings = make_settings(
        infra, routes_for(upstreams), circuit_failures=3, circuit_open_seconds=0.5
    )
    app = create_app(settings, jwks_fetcher=jwks_fetcher)
    async with serving(app), client_for(app) as client:
        catalog.fail_status = 503
        failing = [await client.get("/api/v1/catalog/x") for _ in range(3)]
        assert [r.status_code for r in failing] == [503] * 3
        assert catalog.count() == 3
        blocked = await client.get("/api/v1/catalog/x")
        assert blocked.status_code == 503
        assert blocked.json()["type"].endswith("circuit-open")
        assert int(blocked.headers["retry-after"]) >= 1
        assert catalog.count() == 3  # the open circuit kept it from the upstream
        metrics = (await client.get("/metrics")).text
        assert _gauge(metrics, "gateway_circuit_state", upstreams["catalog"].url) == "2.0"
        await asyncio.sleep(0.6)
        probe = await client.get("/api/v1/catalog/x")  # half-open probe fails: open again
        assert probe.status_code == 503 and catalog.count() == 4
        assert (await client.get("/api/v1/catalog/x")).json()["type"].endswith("circuit-open")
        catalog.fail_status = None
        await asyncio.sleep(0.6)
        ok = [await client.get("/api/v1/catalog/x") for _ in range(3)]
        assert [r.status_code for r in ok] == [200] * 3
        metrics = (await client.get("/metrics")).text
        assert _gauge(metrics, "gateway_circuit_state", upstreams["catalog"].url) == "0.0"


async def test_an_upstream_shedding_load_does_not_open_the_circuit(
    infra: Infra, upstreams: dict[str, Upstream]
) -> None:
    """A 503 with Retry-After is admission control refusing one request (auth under a
    login burst): the instance is up, and its other routes (token refresh) must still be
    reached, so the refusals pass through and never open the circuit."""
    catalog = upstreams["catalog"].behaviour
    settings = make_settings(
        infra, routes_for(upstreams), circuit_failures=3, circuit_open_seconds=30
    )
    app = create_app(settings, jwks_fetcher=jwks_fetcher)
    async with serving(app), client_for(app) as client:
        catalog.fail_status = 503
        catalog.fail_headers = {"content-type": "application/problem+json", "retry-after": "1"}
        shed = [await client.get("/api/v1/catalog/x") for _ in range(6)]
        assert [r.status_code for r in shed] == [503] * 6
        assert all(r.headers["retry-after"] == "1" for r in shed)
        assert catalog.count() == 6  # every one reached the upstream: no circuit-open
        catalog.fail_status = None
        assert (await client.get("/api/v1/catalog/x")).status_code == 200
        metrics = (await client.get("/metrics")).text
        assert _gauge(metrics, "gateway_circuit_state", upstreams["catalog"].url) == "0.0"


def _shedding(auth: Behaviour, suffix: str, retry_after: str, type_: str) -> None:
    auth.fail_status = 503
    auth.fail_suffix = suffix
    auth.fail_headers = {"content-type": "application/problem+json", "retry-after": retry_after}
    auth.fail_body = {"type": type_, "title": "Service Unavailable", "status": 503}


async def test_a_shed_login_route_is_refused_at_the_gateway_until_retry_after(
    infra: Infra, upstreams: dict[str, Upstream], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Auth sheds a login (503 `overloaded`, Retry-After): the gateway refuses that route
    itself (for at most Retry-After seconds), with the same problem, without reaching
    auth; refresh and the other hashing routes keep reaching auth; afterwards logins do
    too. The edge window is widened to the whole Retry-After so that no step of the test
    races a 100 ms window on a loaded machine."""
    monkeypatch.setattr(proxy_module, "EDGE_SHED_SECONDS", 30.0)
    auth = upstreams["auth"].behaviour
    _shedding(auth, "/login", "1", problems.OVERLOADED.uri)
    settings = make_settings(infra, routes_for(upstreams), rate_auth="1000/minute")
    async with gateway(settings) as client:
        first = await client.post("/api/v1/auth/login", json={})
        assert first.status_code == 503 and auth.count("POST", "/login") == 1
        refused = await client.post("/api/v1/auth/login", json={})
        assert auth.count("POST", "/login") == 1  # answered by the gateway
        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"] == problems.OVERLOADED.uri
        assert refused.json()["instance"] == "/api/v1/auth/login"
        assert int(refused.headers["retry-after"]) == 1
        refresh = await client.post("/api/v1/auth/refresh", json={})
        register = await client.post("/api/v1/auth/register", json={})
        assert (refresh.status_code, auth.count("POST", "/refresh")) == (200, 1)
        assert (register.status_code, auth.count("POST", "/register")) == (200, 1)
        metrics = (await client.get("/metrics")).text
        assert "gateway_shed_at_edge_total 1.0" in metrics
        auth.fail_status = None
        await asyncio.sleep(1.1)  # the Retry-After auth gave has passed
        again = await client.post("/api/v1/auth/login", json={})
        assert again.status_code == 200 and auth.count("POST", "/login") == 2


async def test_a_503_that_is_not_a_shed_does_not_close_the_login_route(
    infra: Infra, upstreams: dict[str, Upstream]
) -> None:
    """Auth's other 503s (Redis down) are not capacity: every login still reaches it."""
    auth = upstreams["auth"].behaviour
    _shedding(auth, "/login", "2", "about:blank")
    settings = make_settings(infra, routes_for(upstreams), rate_auth="1000/minute")
    async with gateway(settings) as client:
        answers = [await client.post("/api/v1/auth/login", json={}) for _ in range(3)]
    assert [r.status_code for r in answers] == [503] * 3
    assert auth.count("POST", "/login") == 3


async def test_round_robin_and_unhealthy_instance_skipped(
    infra: Infra, upstreams: dict[str, Upstream]
) -> None:
    settings = make_settings(infra, routes_for(upstreams, two_catalogs=True))
    async with gateway(settings) as client:
        seen = [(await client.get("/api/v1/catalog/rr")).json()["instance"] for _ in range(6)]
        assert sorted(seen) == ["catalog"] * 3 + ["catalog2"] * 3
        upstreams["catalog2"].behaviour.healthy = False
        await asyncio.sleep(0.4)  # a few health polls
        seen = [(await client.get("/api/v1/catalog/rr")).json()["instance"] for _ in range(4)]
        assert seen == ["catalog"] * 4
        metrics = (await client.get("/metrics")).text
    assert _gauge(metrics, "gateway_upstream_healthy", upstreams["catalog2"].url) == "0.0"
    assert 'route="/api/v1/catalog/{path}"' in metrics
    assert "/api/v1/catalog/rr" not in metrics  # never the raw path
    assert 'gateway_upstream_responses_total{status_class="2xx",upstream="catalog"}' in metrics


async def test_an_upstream_5xx_without_a_problem_body_is_masked_keeping_its_status(
    infra: Infra, upstreams: dict[str, Upstream]
) -> None:
    async with gateway(make_settings(infra, routes_for(upstreams))) as client:
        crashed = await client.get("/api/v1/catalog/error")  # a plain JSON 500
    assert crashed.status_code == 500
    assert crashed.headers["content-type"] == "application/problem+json"
    body = crashed.json()
    assert "boom" not in crashed.text and body["status"] == 500
    # One status per registered type, and the upstream's status is kept: no type of its own.
    assert body["type"] == "about:blank" and body["detail"] == "catalog failed to answer."
