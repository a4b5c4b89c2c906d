"""Rate limits (per IP, per account) and the login lockout with capped exponential backoff."""

from __future__ import annotations

import dataclasses

import pytest
from prometheus_client import REGISTRY

from services.auth.context import AuthContext
from services.auth.ratelimit import Lockout, RateLimiter
from services.common.redis import create_redis
from services.common.state import provide, provided
from tests.integration.auth.support import (
    PASSWORD,
    auth_client,
    is_problem,
    login,
    new_email,
    verified_user,
)

pytestmark = pytest.mark.usefixtures("infra")


def rejected(limit: str) -> float:
    return REGISTRY.get_sample_value("rate_limit_rejections_total", {"limit": limit}) or 0.0


def ip(n: int) -> dict[str, str]:
    return {"x-forwarded-for": f"198.51.100.{n}"}


async def test_login_per_ip_limit_gives_429_with_retry_after() -> None:
    async with auth_client(rate_login_ip="3/minute") as (_, client):
        email = new_email()
        await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        before = rejected("auth_login_ip")
        body = {"email": email, "password": PASSWORD}
        answers = [
            (await client.post("/api/v1/auth/login", json=body, headers=ip(7))).status_code
            for _ in range(4)
        ]
        assert answers == [200, 200, 200, 429]
        refused = await client.post("/api/v1/auth/login", json=body, headers=ip(7))
        assert is_problem(refused, 429)
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert rejected("auth_login_ip") == before + 2
        # Another address is not affected.
        assert (
            await client.post("/api/v1/auth/login", json=body, headers=ip(8))
        ).status_code == 200


async def test_login_per_account_limit_spans_addresses() -> None:
    async with auth_client(rate_login_account="2/minute") as (_, client):
        email = new_email()
        await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        codes = []
        for n in range(3):
            # Untrusted clients: no device token (a device's own limit is tested in
            # tests/security/test_review_accounts.py).
            client.cookies.clear()
            response = await client.post(
                "/api/v1/auth/login",
                json={"email": email, "password": PASSWORD},
                headers=ip(20 + n),
            )
            codes.append(response.status_code)
        assert codes == [200, 200, 429]


async def test_register_forgot_and_resend_are_limited() -> None:
    async with auth_client(rate_register_ip="2/hour", rate_email_account="1/hour") as (_, client):
        codes = [
            (
                await client.post(
                    "/api/v1/auth/register",
                    json={"email": new_email(), "password": PASSWORD},
                    headers=ip(30),
                )
            ).status_code
            for _ in range(3)
        ]
        assert codes == [202, 202, 429]
        email = new_email()
        for path in ("/api/v1/auth/password/forgot", "/api/v1/auth/verify-email/resend"):
            first = await client.post(path, json={"email": email}, headers=ip(31))
            second = await client.post(path, json={"email": email}, headers=ip(32))
            assert first.status_code == 202
            assert is_problem(second, 429) and "retry-after" in second.headers


async def test_lockout_after_repeated_failures_even_for_the_right_password() -> None:
    settings = {"lockout_threshold": 3, "lockout_base_seconds": 60, "lockout_max_seconds": 900}
    async with auth_client(**settings) as (app, client):
        email, _ = await verified_user(app, client)
        wrong = {"email": email, "password": "definitely wrong"}
        codes = [
            (await client.post("/api/v1/auth/login", json=wrong)).status_code for _ in range(3)
        ]
        assert codes == [401, 401, 401]  # the third failure sets the lock
        locked = await client.post(
            "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
        )
        assert is_problem(locked, 429)
        assert 55 <= int(locked.headers["retry-after"]) <= 60
        # Unknown accounts lock the same way: the lock says nothing about existence.
        ghost = {"email": new_email(), "password": "definitely wrong"}
        ghost_codes = [
            (await client.post("/api/v1/auth/login", json=ghost)).status_code for _ in range(4)
        ]
        assert ghost_codes == [401, 401, 401, 429]


async def test_lockout_clears_after_success_and_backoff_is_capped() -> None:
    async with auth_client(lockout_threshold=2, lockout_base_seconds=1) as (app, client):
        email, _ = await verified_user(app, client)
        assert (
            await client.post("/api/v1/auth/login", json={"email": email, "password": "bad pass 1"})
        ).status_code == 401
        await login(client, email)  # success resets the failure count
        assert (
            await client.post("/api/v1/auth/login", json={"email": email, "password": "bad pass 2"})
        ).status_code == 401
        await login(client, email)
        lockout = provided(app, AuthContext).lockout
        assert [lockout.backoff(n) for n in range(1, 6)] == [0, 1, 2, 4, 8]
    capped = Lockout(app.state.redis, threshold=5, base_seconds=30, max_seconds=900)
    assert capped.backoff(5) == 30 and capped.backoff(9) == 480
    assert capped.backoff(10) == capped.backoff(10_000) == 900


async def test_redis_outage_fails_closed_with_503() -> None:
    async with auth_client() as (app, client):
        email = new_email()
        await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        real = provided(app, AuthContext)
        dead = create_redis("redis://127.0.0.1:1/0", 0.2)  # nothing listens on port 1
        provide(app, dataclasses.replace(real, limiter=RateLimiter(dead)))
        try:
            response = await client.post(
                "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
            )
        finally:
            provide(app, real)
            await dead.aclose()
        assert is_problem(response, 503)
        assert response.headers["retry-after"] == "2"
