"""Issue 18, network and edge findings: the client address behind proxies, operator
endpoints. Real gunicorn (deploy/gunicorn.conf.py, uvicorn's proxy-headers middleware),
real sockets, real Redis and PostgreSQL.

A client that is not a trusted proxy connects from its own loopback address
(127.x.y.z, random per run, so hour-long limits from an earlier run do not leak in).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from services.common.migrate import upgrade_all
from tests.integration.gateway.upstream import Upstream, free_port, start_upstream
from tests.support.infra import Infra, recreate_database, with_database
from tests.support.polling import process_answering

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("infra")]
ROOT = Path(__file__).resolve().parents[2]


def loopback_client_address() -> str:
    """A loopback address that is not 127.0.0.1 (the trusted proxy), fresh per run."""
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"


def documentation_address() -> str:
    return (
        f"198.51.100.{random.randint(1, 254)}"
        if random.random() < 0.5
        else (f"203.0.113.{random.randint(1, 254)}")
    )


def client_from(base: str, source: str) -> httpx.AsyncClient:
    """A client whose TCP peer address is `source` (no keep-alive surprises)."""
    transport = httpx.AsyncHTTPTransport(local_address=source)
    return httpx.AsyncClient(base_url=base, transport=transport, timeout=15, trust_env=False)


@asynccontextmanager
async def gunicorn(app: str, env: dict[str, str], tmp: Path) -> AsyncIterator[str]:
    """`app` under gunicorn with deploy/gunicorn.conf.py on a free loopback port."""
    port = free_port()
    full = os.environ | {
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "ENVIRONMENT": "test",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / f"prom-{port}"),
        "LOG_LEVEL": "WARNING",
        **env,
    }
    log_path = tmp / f"gunicorn-{port}.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", app],
            cwd=ROOT,
            env=full,
            stdout=log_file,
            stderr=log_file,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            await process_answering(f"{base}/healthz", proc, log=log_path, timeout=40)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def echo_auth() -> Iterator[Upstream]:
    upstream = start_upstream("auth", "/api/v1/auth")
    yield upstream
    upstream.server.stop()


def _gateway_env(infra: Infra, upstream: Upstream, **extra: str) -> dict[str, str]:
    routes = {"/api/v1/auth": [upstream.url], "/api/v1/catalog": [upstream.url]}
    return {
        "REDIS_URL": infra.redis_url,
        "GATEWAY_ROUTES": json.dumps(routes),
        "GATEWAY_RATE_AUTH": "3/minute",
        "GATEWAY_RATE_ANONYMOUS": "100000/minute",
        "JWKS_URL": f"{upstream.url}/.well-known/jwks.json",
        **extra,
    }


def _received(response: httpx.Response) -> dict[str, list[str]]:
    """The headers the echo upstream saw (name -> values)."""
    seen: dict[str, list[str]] = {}
    for name, value in response.json()["headers"]:
        seen.setdefault(name.lower(), []).append(value)
    return seen


async def test_gateway_behind_a_trusted_proxy_limits_each_client_apart(
    infra: Infra, echo_auth: Upstream, tmp_path: Path
) -> None:
    """The ingress (here 127.0.0.1, FORWARDED_ALLOW_IPS) forwards two clients: each has
    its own credential-route budget; a client that writes X-Forwarded-For itself stays in
    its own bucket, and only the address the gateway settled on goes upstream."""
    env = _gateway_env(infra, echo_auth, FORWARDED_ALLOW_IPS="127.0.0.1")
    one, two = documentation_address(), f"192.0.2.{random.randint(1, 254)}"
    async with (
        gunicorn("gateway.app:create_app()", env, tmp_path) as base,
        client_from(base, "127.0.0.1") as ingress,
    ):
        # What an ingress sends: whatever the client wrote, then the client's address.
        def via(client_ip: str, forged: str | None = None) -> dict[str, str]:
            chain = f"{forged}, {client_ip}" if forged else client_ip
            return {"X-Forwarded-For": chain}

        login = "/api/v1/auth/login"
        first = [(await ingress.post(login, headers=via(one), json={})) for _ in range(3)]
        assert [r.status_code for r in first] == [200, 200, 200]
        # The same client, pretending to be someone else: still its own (spent) bucket.
        forged = await ingress.post(login, headers=via(one, forged=two), json={})
        assert forged.status_code == 429, forged.text
        # Another client behind the same ingress has its whole budget.
        other = await ingress.post(login, headers=via(two), json={})
        assert other.status_code == 200, other.text
        assert other.headers["ratelimit-remaining"] == "2"
        # Upstream (auth) is told the client's address, and nothing the client wrote.
        seen = _received(first[0])
        assert seen["x-forwarded-for"] == [one] and seen["x-real-ip"] == [one]
        spoof = await ingress.post(
            login, headers={**via(two, forged="10.9.8.7"), "X-Real-IP": "10.9.8.7"}, json={}
        )
        assert _received(spoof)["x-real-ip"] == [two]
        assert _received(spoof)["x-forwarded-for"] == [two]


async def test_gateway_ignores_forwarded_for_from_a_client_it_does_not_trust(
    infra: Infra, echo_auth: Upstream, tmp_path: Path
) -> None:
    """A client connecting directly (the gateway is the edge, as in compose) cannot
    choose its bucket by writing X-Forwarded-For."""
    env = _gateway_env(infra, echo_auth, FORWARDED_ALLOW_IPS="127.0.0.1")
    source = loopback_client_address()
    async with (
        gunicorn("gateway.app:create_app()", env, tmp_path) as base,
        client_from(base, source) as direct,
    ):
        codes = []
        for _ in range(4):
            fresh = {"X-Forwarded-For": documentation_address()}
            response = await direct.post("/api/v1/auth/login", headers=fresh, json={})
            codes.append(response.status_code)
            if response.status_code == 200:
                assert _received(response)["x-real-ip"] == [source]
    assert codes == [200, 200, 200, 429]


@pytest.fixture
async def auth_database(infra: Infra) -> str:
    name = f"auth_review_{os.environ.get('PYTEST_XDIST_WORKER', 'master')}"
    await recreate_database(infra.admin_database_url, name)
    url = with_database(infra.admin_database_url, name)
    await asyncio.to_thread(upgrade_all, url, ["auth"])
    return url


async def test_auth_believes_forwarded_for_only_from_the_gateway(
    infra: Infra, auth_database: str, tmp_path: Path
) -> None:
    """Auth's per-IP limits (here forgot-password, 2 an hour per IP): a caller that is not
    the gateway (FORWARDED_ALLOW_IPS) gets no new budget by rotating X-Forwarded-For;
    the gateway's X-Forwarded-For does key two clients apart."""
    env = {
        "DATABASE_URL": auth_database,
        "REDIS_URL": infra.redis_url,
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
        "AUTH_ARGON2_MEMORY_KIB": "1024",
        "AUTH_ARGON2_TIME_COST": "1",
        "AUTH_BACKGROUND_TASKS": "false",
        "AUTH_UNIFORM_RESPONSE_SECONDS": "0",
        "AUTH_RATE_EMAIL_IP": "2/hour",
        "AUTH_RATE_EMAIL_ACCOUNT": "100/hour",
    }
    forgot = "/api/v1/auth/password/forgot"

    def body() -> dict[str, str]:
        return {"email": f"review-{uuid.uuid4().hex[:12]}@example.com"}

    async with gunicorn("services.auth.app:create_app()", env, tmp_path) as base:
        async with client_from(base, loopback_client_address()) as intruder:
            codes = [
                (
                    await intruder.post(
                        forgot, json=body(), headers={"X-Forwarded-For": documentation_address()}
                    )
                ).status_code
                for _ in range(3)
            ]
        assert codes == [202, 202, 429]
        async with client_from(base, "127.0.0.1") as gateway:
            one, two = documentation_address(), f"192.0.2.{random.randint(1, 254)}"
            for_one = [
                (
                    await gateway.post(forgot, json=body(), headers={"X-Forwarded-For": one})
                ).status_code
                for _ in range(3)
            ]
            for_two = await gateway.post(forgot, json=body(), headers={"X-Forwarded-For": two})
        assert for_one == [202, 202, 429]
        assert for_two.status_code == 202
