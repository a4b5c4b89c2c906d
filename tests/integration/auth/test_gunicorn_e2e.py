"""Real gunicorn, two workers, a fresh database: the workers start together and must
share one signing key, so a token issued by either verifies on the other."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from services.common.migrate import upgrade_all
from tests.support.infra import Infra, _dsn, recreate_database, with_database
from tests.support.polling import process_answering
from tools.devstack.embedded import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("infra")]
ROOT = Path(__file__).resolve().parents[3]
PASSWORD = "correct horse battery staple"


@pytest.fixture
async def gunicorn(infra: Infra, tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    name = f"auth_e2e_{os.environ.get('PYTEST_XDIST_WORKER', 'master')}"
    await recreate_database(infra.admin_database_url, name)
    database_url = with_database(infra.admin_database_url, name)
    await asyncio.to_thread(upgrade_all, database_url, ["auth"])
    port = free_port()
    env = os.environ | {
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "DATABASE_URL": database_url,
        "REDIS_URL": infra.redis_url,
        "ENVIRONMENT": "test",
        "AUTH_ARGON2_MEMORY_KIB": "1024",
        "AUTH_ARGON2_TIME_COST": "1",
        "AUTH_BACKGROUND_TASKS": "false",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        "LOG_LEVEL": "WARNING",
    }
    log_path = tmp_path / "gunicorn.log"
    log_file = log_path.open("wb")  # a file, not a pipe: a full pipe would block gunicorn
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "deploy/gunicorn.conf.py",
            "services.auth.app:create_app()",
        ],
        cwd=ROOT,
        env=env,
        stdout=log_file,
        stderr=log_file,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await process_answering(f"{base}/readyz", proc, log=log_path)
        yield base, database_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_file.close()


async def test_workers_share_one_key_and_verify_each_others_tokens(
    gunicorn: tuple[str, str],
) -> None:
    base, database_url = gunicorn
    email = f"e2e-{time.time_ns()}@example.com"
    # A fresh connection per request, so requests spread over both workers.
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, limits=limits) as client:
        registered = await client.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert registered.status_code == 202
        tokens = []
        for _ in range(6):
            response = await client.post(
                "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
            )
            assert response.status_code == 200, response.text
            tokens.append(response.json()["access_token"])
        for token in tokens:
            for _ in range(3):
                seen = await client.get(
                    "/api/v1/auth/sessions", headers={"Authorization": f"Bearer {token}"}
                )
                assert seen.status_code == 200, seen.text
        jwks = (await client.get("/.well-known/jwks.json")).json()
        metrics = (await client.get("/metrics")).text
    assert len(jwks["keys"]) == 1
    assert 'auth_logins_total{reason="ok",result="success"} 6.0' in metrics
    conn = await asyncpg.connect(_dsn(database_url))
    try:
        assert await conn.fetchval("SELECT count(*) FROM auth.signing_keys") == 1
    finally:
        await conn.close()
