"""Rate limits are kept in Redis, so two auth workers (two app instances, as gunicorn runs
them) share one budget: requests spread over both still hit the limit at its number."""

from __future__ import annotations

import random

import pytest

from tests.integration.auth.support import PASSWORD, auth_client, is_problem, new_email

pytestmark = pytest.mark.usefixtures("infra")


async def test_login_limit_is_shared_by_two_workers() -> None:
    # A fresh address: other suites use low octets of the same test range.
    headers = {"x-forwarded-for": f"198.51.100.{random.randint(150, 254)}"}
    email = new_email()
    body = {"email": email, "password": PASSWORD}
    async with (
        auth_client(rate_login_ip="4/minute") as (_, first),
        auth_client(rate_login_ip="4/minute") as (_, second),
    ):
        registered = await first.post("/api/v1/auth/register", json=body)
        assert registered.status_code == 202
        codes = []
        for n in range(5):
            client = first if n % 2 == 0 else second
            response = await client.post("/api/v1/auth/login", json=body, headers=headers)
            codes.append(response.status_code)
        assert codes == [200, 200, 200, 200, 429]  # 2 + 2 allowed, not 4 per worker
        refused = await second.post("/api/v1/auth/login", json=body, headers=headers)
        assert is_problem(refused, 429) and "retry-after" in refused.headers
