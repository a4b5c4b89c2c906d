"""The management command: once in a real subprocess as operators run it, then in-process."""

from __future__ import annotations

import asyncio
import functools
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from jose import jwt

from services.auth.context import AuthContext
from services.auth.manage import main
from services.common.state import provided
from tests.integration.auth.support import (
    PASSWORD,
    auth_client,
    is_problem,
    login,
    new_email,
    register,
)

pytestmark = pytest.mark.usefixtures("infra")
ROOT = Path(__file__).resolve().parents[3]


CHEAP = {"AUTH_ARGON2_MEMORY_KIB": "1024", "AUTH_ARGON2_TIME_COST": "1"}


async def manage(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The command in a real process, as an operator runs it."""
    env = os.environ | CHEAP
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.auth.manage", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )


async def in_process(
    monkeypatch: pytest.MonkeyPatch, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """The same command's main() in a thread (no interpreter start-up: keeps the suite fast)."""
    for name, value in CHEAP.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    code = await asyncio.to_thread(main, list(args))
    monkeypatch.undo()
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


async def test_create_admin_promote_and_rotate_key(monkeypatch: pytest.MonkeyPatch) -> None:
    run = functools.partial(in_process, monkeypatch)
    async with auth_client() as (app, client):
        email = new_email()
        created = await manage(
            "create-admin", "--email", email, "--password-stdin", stdin=PASSWORD + "\n"
        )
        assert created.returncode == 0, created.stderr
        assert PASSWORD not in created.stdout + created.stderr
        tokens = await login(client, email)
        claims = jwt.get_unverified_claims(tokens["access_token"])
        assert claims["role"] == "admin" and claims["email_verified"] is True

        twice = await run(
            "create-admin", "--email", email, "--password-stdin", stdin=PASSWORD + "\n"
        )
        assert twice.returncode == 1 and "already exists" in twice.stderr
        weak = await run(
            "create-admin", "--email", new_email(), "--password-stdin", stdin="password\n"
        )
        assert weak.returncode == 1 and "common" in weak.stderr

        user = new_email()
        await register(client, user)
        promoted = await run("promote", "--email", user)
        assert promoted.returncode == 0, promoted.stderr
        await asyncio.sleep(0.01)
        assert (
            jwt.get_unverified_claims((await login(client, user))["access_token"])["role"]
            == "admin"
        )
        missing = await run("promote", "--email", new_email())
        assert missing.returncode == 1

        rotated = await run("rotate-key")
        assert rotated.returncode == 0, rotated.stderr
        kid = rotated.stdout.strip().rsplit(" ", 1)[-1]
        jwks = (await client.get("/.well-known/jwks.json")).json()
        assert kid in {k["kid"] for k in jwks["keys"]}
        provided(app, AuthContext).keys.invalidate()
        fresh = await login(client, email)
        assert jwt.get_unverified_header(fresh["access_token"])["kid"] == kid


async def test_bootstrap_admin_in_development_only() -> None:
    email = new_email()
    async with auth_client(
        environment="test", bootstrap_admin_email=email, bootstrap_admin_password=PASSWORD
    ) as (_, client):
        refused = await client.post(
            "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
        )
        assert is_problem(refused, 401)
    async with auth_client(
        environment="development", bootstrap_admin_email=email, bootstrap_admin_password=PASSWORD
    ) as (_, client):
        claims = jwt.get_unverified_claims((await login(client, email))["access_token"])
        assert claims["role"] == "admin"
    # A second start finds the admin there and carries on.
    async with auth_client(
        environment="development", bootstrap_admin_email=email, bootstrap_admin_password=PASSWORD
    ) as (_, client):
        await login(client, email)
