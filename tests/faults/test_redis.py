"""Redis crashes (SIGKILL) and comes back on the same port with its append-only file.

Promised (docs/gateway.md, docs/auth.md, docs/catalog.md): catalog reads degrade to
PostgreSQL; the gateway's rate limits fail OPEN; every token check fails CLOSED (503,
`Retry-After`), the credential endpoints too; a token revoked before the crash is still
rejected after it (revocations are persisted, not only in memory)."""

from __future__ import annotations

import os
import signal
import time

import httpx

from tests.faults.helpers import (
    admin_token,
    assert_unavailable,
    client,
    client_ip,
    eventually,
    headers,
    login,
    new_product,
    register,
)
from tests.support.stack import Stack

ANONYMOUS_LIMIT = 40  # GATEWAY_RATE_ANONYMOUS of the faults stack


def _gateway_metric(http: httpx.Client, gw: str, name: str) -> float:
    body = http.get(f"{gw}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def _burst(http: httpx.Client, url: str, ip: str, count: int) -> list[int]:
    return [http.get(url, headers=headers(ip=ip)).status_code for _ in range(count)]


def test_redis_crash_degrades_reads_fails_auth_closed_and_keeps_revocations(
    stack: Stack,
) -> None:
    gw = stack.gateway_url
    with client() as http:
        admin = admin_token(http, gw)
        pid = new_product(http, gw, admin)["id"]
        product_url = f"{gw}/api/v1/catalog/products/{pid}"
        list_url = f"{gw}/api/v1/catalog/products?limit=5"
        email = register(http, gw)
        revoked = login(http, gw, email)["access_token"]
        live = login(http, gw, email)["access_token"]
        assert http.post(f"{gw}/api/v1/auth/logout", headers=headers(revoked)).status_code == 204
        rejected = http.get(f"{gw}/api/v1/users/me", headers=headers(revoked))
        assert rejected.status_code == 401, rejected.text
        assert http.get(f"{gw}/api/v1/users/me", headers=headers(live)).status_code == 200
        # The anonymous limit is enforced while Redis answers.
        statuses = _burst(http, list_url, client_ip(), ANONYMOUS_LIMIT + 1)
        assert statuses[:ANONYMOUS_LIMIT] == [200] * ANONYMOUS_LIMIT
        assert statuses[-1] == 429
        time.sleep(1.1)  # appendfsync everysec: the revocation reaches the disk

        os.kill(stack.redis.pid, signal.SIGKILL)
        try:
            unavailable_before = _gateway_metric(http, gw, "gateway_rate_limit_unavailable_total")
            started = time.monotonic()
            # Reads go to PostgreSQL.
            assert http.get(product_url, headers=headers()).json()["id"] == pid
            # Rate limits fail open: one client goes past its limit unhindered.
            statuses = _burst(http, list_url, client_ip(), ANONYMOUS_LIMIT + 10)
            assert statuses == [200] * (ANONYMOUS_LIMIT + 10), statuses
            # Token checks fail closed, for the revoked token and the live one alike.
            for token in (revoked, live):
                assert_unavailable(http.get(f"{gw}/api/v1/users/me", headers=headers(token)))
            # So do the credential endpoints (no unlimited password guessing).
            assert_unavailable(
                http.post(
                    f"{gw}/api/v1/auth/login",
                    json={"email": email, "password": "wrong-password-1"},
                    headers=headers(),
                )
            )
            elapsed = time.monotonic() - started
            ready = http.get(f"{gw}/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["redis"] != "ok"
            unavailable_after = _gateway_metric(http, gw, "gateway_rate_limit_unavailable_total")
            assert unavailable_after - unavailable_before >= ANONYMOUS_LIMIT + 10
        finally:
            stack.redis.start()
        print(f"\nredis down: {ANONYMOUS_LIMIT + 15} requests answered in {elapsed:.2f}s")

        # Back: the revocation was not forgotten, the live token works again, limits count.
        def me_works() -> bool:
            return http.get(f"{gw}/api/v1/users/me", headers=headers(live)).status_code == 200

        assert eventually(me_works, timeout=15)
        after = http.get(f"{gw}/api/v1/users/me", headers=headers(revoked))
        assert after.status_code == 401, after.text
        assert after.json()["detail"] == "token has been revoked"

        # Each gateway worker skips Redis for its 2 s cooldown after its last failure,
        # then counts again (a fresh client address per try).
        def limited() -> bool:
            statuses = _burst(http, list_url, client_ip(), ANONYMOUS_LIMIT + 1)
            return statuses[-1] == 429 and statuses.count(200) == ANONYMOUS_LIMIT

        assert eventually(limited, timeout=15, pause=0.5)
        assert login(http, gw, email)["access_token"]
