"""Under a login burst the stack sheds, it does not collapse (docs/performance.md,
"Admission policy"): the real processes under gunicorn, driven through the gateway.

Auth runs one worker with one hash slot and real argon2id cost (m=19 MiB, t=2), so a
burst of logins arrives far faster than the pool serves. What must hold, whatever the
machine's speed (no timing is asserted):
- every login is answered 200 or 503 problem+json with Retry-After: never a 500, a
  transport error or a client timeout, and some are refused (the excess);
- the refusals are `overloaded` (auth's own, or the gateway's while auth's last one
  runs), and the gateway's circuit to auth
  stays closed, so token refreshes sent during the burst are all served (200);
- public catalog reads during the burst are all served (200);
- no lost writes: every registration answered 202 exists, none answered 503 does.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from tests.support.infra import Infra, _dsn
from tests.support.stack import Stack, fresh_database, running_stack

pytestmark = pytest.mark.e2e

PASSWORD = "e2e-Admission-horse-battery-9"
BURST_LOGINS = 60
BURST_REGISTRATIONS = 20
READS = 40
REFRESHES = 4
ADMISSION_ENV = {
    # Real hashing cost (the suite's default is 1 MiB, t=1: too cheap to queue).
    "AUTH_ARGON2_MEMORY_KIB": "19456",
    "AUTH_ARGON2_TIME_COST": "2",
    "AUTH_HASH_CONCURRENCY": "1",
    "AUTH_HASH_QUEUE_LIMIT": "32",
    "AUTH_HASH_MAX_WAIT_MS": "100",
    # Rate limits and lockout out of the way: this is about capacity, not abuse.
    "GATEWAY_RATE_ANONYMOUS": "1000000/minute",
    "GATEWAY_RATE_USER": "1000000/minute",
    "GATEWAY_RATE_AUTH": "1000000/minute",
    "AUTH_RATE_LOGIN_IP": "1000000/minute",
    "AUTH_RATE_LOGIN_ACCOUNT": "1000000/minute",
    "AUTH_RATE_REGISTER_IP": "1000000/hour",
    "AUTH_UNIFORM_RESPONSE_SECONDS": "0",
}


@pytest.fixture(scope="module")
def shedding_stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("admission-stack")
    with running_stack(
        root,
        fresh_database(infra, "admission"),
        extra_env=ADMISSION_ENV,
        label="admission stack",
    ) as built:
        yield built


async def _register(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})


async def _login(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})


async def _existing(database_url: str, emails: list[str]) -> set[str]:
    conn = await asyncpg.connect(_dsn(database_url))
    try:
        rows = await conn.fetch("SELECT email FROM auth.accounts WHERE email = ANY($1)", emails)
    finally:
        await conn.close()
    return {r["email"] for r in rows}


async def _burst(stack: Stack) -> None:
    run = uuid.uuid4().hex[:8]
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, limits=limits, timeout=httpx.Timeout(60.0)
    ) as client:
        # Before the burst, one at a time: accounts to log in with, sessions to refresh.
        users = [f"adm-{run}-{i}@example.com" for i in range(4)]
        for email in users:
            assert (await _register(client, email)).status_code == 202
        refresh_tokens = []
        for email in users[:REFRESHES]:
            first = await _login(client, email)
            assert first.status_code == 200, first.text
            refresh_tokens.append(first.json()["refresh_token"])

        new_accounts = [f"adm-{run}-new-{i}@example.com" for i in range(BURST_REGISTRATIONS)]
        shedding = asyncio.Event()
        refusals = 0

        async def login(email: str) -> httpx.Response:
            nonlocal refusals
            answer = await _login(client, email)
            if answer.status_code == 503:
                refusals += 1
                if refusals >= 8:
                    shedding.set()
            return answer

        logins = [login(users[i % len(users)]) for i in range(BURST_LOGINS)]
        registrations = [_register(client, e) for e in new_accounts]

        async def reads() -> list[httpx.Response]:
            return [
                await client.get(f"/api/v1/catalog/products?limit={1 + i % 5}")
                for i in range(READS)
            ]

        async def refreshes() -> list[httpx.Response]:
            # While auth is refusing logins: the refusals must not close auth's other routes.
            await asyncio.wait_for(shedding.wait(), timeout=60)
            return list(
                await asyncio.gather(
                    *(
                        client.post("/api/v1/auth/refresh", json={"refresh_token": token})
                        for token in refresh_tokens
                    )
                )
            )

        results = await asyncio.gather(
            asyncio.gather(*logins, return_exceptions=True),
            asyncio.gather(*registrations, return_exceptions=True),
            reads(),
            refreshes(),
        )
        login_answers, register_answers, read_answers, refresh_answers = results
        protected = [*read_answers, *refresh_answers]

    print(
        "STAT",
        sorted(
            (getattr(r, "status_code", 0), getattr(r, "headers", {}).get("content-type", ""))
            for r in login_answers
        ),
    )
    failures = [r for r in [*login_answers, *register_answers] if isinstance(r, BaseException)]
    assert not failures, f"transport errors or timeouts: {failures[:3]!r}"
    answered = [r for r in [*login_answers, *register_answers] if isinstance(r, httpx.Response)]
    statuses = sorted({r.status_code for r in answered})
    assert set(statuses) <= {200, 202, 503}, statuses
    refused = [r for r in answered if r.status_code == 503]
    assert refused, "a burst far beyond one hash slot must have refusals"
    assert any(isinstance(r, httpx.Response) and r.status_code == 200 for r in login_answers)
    for r in refused:
        assert r.headers["content-type"].startswith("application/problem+json"), r.text
        assert r.json()["type"].endswith("/overloaded"), r.text  # auth's, not circuit-open
        assert int(r.headers["retry-after"]) >= 1

    # Reads and token refreshes are protected: every one served.
    assert [r.status_code for r in protected] == [200] * len(protected), [
        (r.request.url.path, r.status_code, r.text[:120]) for r in protected if r.status_code != 200
    ]

    # No lost writes, no half-made ones.
    acked = [
        e
        for e, r in zip(new_accounts, register_answers, strict=True)
        if isinstance(r, httpx.Response) and r.status_code == 202
    ]
    shed = [
        e
        for e, r in zip(new_accounts, register_answers, strict=True)
        if isinstance(r, httpx.Response) and r.status_code == 503
    ]
    stored = await _existing(stack.database_url, new_accounts)
    assert set(acked) <= stored, sorted(set(acked) - stored)
    assert not (set(shed) & stored), sorted(set(shed) & stored)

    # The burst is over: the next login is served (the pool recovered) once the client
    # has honoured the Retry-After it was given (the gateway refuses logins itself while
    # auth's last one runs: docs/gateway.md, "Hashing routes under load").
    await asyncio.sleep(max(int(r.headers["retry-after"]) for r in refused))
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30.0) as client:
        after = await _login(client, users[0])
        assert after.status_code == 200, after.text


def test_a_login_burst_is_shed_while_reads_and_refreshes_are_served(
    shedding_stack: Stack,
) -> None:
    asyncio.run(_burst(shedding_stack))
