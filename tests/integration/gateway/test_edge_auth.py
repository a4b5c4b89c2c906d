"""Public vs protected routes, tokens refused at the edge, identity headers."""

from __future__ import annotations

import base64
import json
import time

import redis.asyncio as aioredis

from services.common.revocation import revoke_session, revoke_user_tokens
from tests.integration.gateway.conftest import gateway, make_settings, routes_for, sent_headers
from tests.integration.gateway.upstream import Upstream
from tests.support.infra import Infra
from tests.support.tokens import bearer, mint

SPOOF = {
    "X-User-Id": "attacker",
    "X-User-Role": "admin",
    "X-User-Anything": "x",
    "X-Session-Id": "forged",
}


def _alg_none_token() -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {
        "iss": "http://auth:8001",
        "aud": "shopstack",
        "sub": "u1",
        "exp": now + 600,
        "iat": now,
        "jti": "j",
        "sid": "s",
        "role": "admin",
    }
    return f"{part({'alg': 'none', 'kid': 'test-key-1'})}.{part(claims)}."


async def test_public_route_needs_no_token_and_spoofed_identity_is_dropped(
    infra: Infra, upstreams: dict[str, Upstream]
) -> None:
    async with gateway(make_settings(infra, routes_for(upstreams))) as client:
        response = await client.get("/api/v1/catalog/products", headers=SPOOF)
    assert response.status_code == 200
    received = sent_headers(response.json())
    assert not [name for name in received if name.startswith("x-user-")]
    assert "x-session-id" not in received


async def test_protected_route_without_token_is_401_problem(
    infra: Infra, upstreams: dict[str, Upstream]
) -> None:
    async with gateway(make_settings(infra, routes_for(upstreams))) as client:
        response = await client.get("/api/v1/users/me")
        post = await client.post("/api/v1/catalog/products", json={})  # writes are not public
    for r in (response, post):
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["status"] == 401
    assert upstreams["users"].behaviour.count() == 0
    assert upstreams["catalog"].behaviour.count() == 0


async def test_valid_token_forwards_verified_identity_not_the_spoofed_one(
    infra: Infra, upstreams: dict[str, Upstream]
) -> None:
    token = mint("user-42", role="user", session_id="sess-42")
    async with gateway(make_settings(infra, routes_for(upstreams))) as client:
        response = await client.get("/api/v1/users/me", headers={**bearer(token), **SPOOF})
    assert response.status_code == 200
    received = sent_headers(response.json())
    assert received["x-user-id"] == ["user-42"]
    assert received["x-user-role"] == ["user"]
    assert received["x-session-id"] == ["sess-42"]
    assert "x-user-anything" not in received
    assert received["authorization"] == [f"Bearer {token}"]  # unchanged: services re-verify


async def test_bad_tokens_are_refused_at_the_edge(
    infra: Infra, upstreams: dict[str, Upstream], redis: aioredis.Redis
) -> None:
    revoked_session = mint("user-r", session_id="revoked-session-1")
    await revoke_session(redis, "revoked-session-1")
    old = mint("user-old", issued_at=round(time.time(), 3) - 5)
    await revoke_user_tokens(redis, "user-old")
    bad = {
        "expired": mint(ttl=-120),
        "alg none": _alg_none_token(),
        "wrong audience": mint(aud="someone-else"),
        "wrong issuer": mint(iss="http://evil"),
        "not yet valid": mint(nbf=int(time.time()) + 3600),
        "garbage": "not.a.jwt",
        "revoked session": revoked_session,
        "revoked user": old,
    }
    async with gateway(make_settings(infra, routes_for(upstreams))) as client:
        for label, token in bad.items():
            response = await client.get("/api/v1/users/me", headers=bearer(token))
            assert response.status_code == 401, label
            assert response.headers["www-authenticate"].startswith("Bearer"), label
        basic = await client.get("/api/v1/users/me", headers={"Authorization": "Basic eDp5"})
        assert basic.status_code == 401
    assert upstreams["users"].behaviour.count() == 0


async def test_public_route_with_token_verifies_it(
    infra: Infra, upstreams: dict[str, Upstream]
) -> None:
    admin = mint("admin-1", role="admin")
    async with gateway(make_settings(infra, routes_for(upstreams))) as client:
        as_admin = await client.get("/api/v1/catalog/products", headers=bearer(admin))
        invalid = await client.get("/api/v1/catalog/products", headers=bearer(mint(ttl=-120)))
        login = await client.post("/api/v1/auth/login", json={"email": "a@b.c"})
    assert as_admin.status_code == 200
    assert sent_headers(as_admin.json())["x-user-role"] == ["admin"]
    assert invalid.status_code == 401
    assert login.status_code == 200  # public credential endpoint


async def test_redis_down_fails_closed_for_tokens_open_for_rate_limits(
    infra: Infra, upstreams: dict[str, Upstream]
) -> None:
    from tests.integration.gateway.upstream import free_port

    settings = make_settings(
        infra,
        routes_for(upstreams),
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        rate_anonymous="1/minute",
    )
    async with gateway(settings) as client:
        protected = await client.get("/api/v1/users/me", headers=bearer(mint()))
        public = [await client.get("/api/v1/catalog/products") for _ in range(3)]
        ready = await client.get("/readyz")
    assert protected.status_code == 503
    assert protected.headers["content-type"] == "application/problem+json"
    assert [r.status_code for r in public] == [200, 200, 200]  # limits fail open
    assert ready.status_code == 503
    assert ready.json()["checks"]["redis"] == "down"


async def test_unknown_paths_and_dot_segments_are_404(
    infra: Infra, upstreams: dict[str, Upstream]
) -> None:
    async with gateway(make_settings(infra, routes_for(upstreams))) as client:
        unknown = await client.get("/api/v2/nothing")
        sneaky = await client.get("/api/v1/catalog/%2e%2e/users/me")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert sneaky.status_code == 404
    assert upstreams["users"].behaviour.count() == 0
    assert upstreams["catalog"].behaviour.count() == 0
