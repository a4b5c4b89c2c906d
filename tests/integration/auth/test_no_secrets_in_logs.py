"""No password, hash or token reaches a log line during the auth flows."""

from __future__ import annotations

import io
import logging

import pytest

from services.common.logging import JsonFormatter
from tests.integration.auth.support import (
    PASSWORD,
    auth_client,
    bearer,
    emails,
    new_email,
    token_from,
    verified_user,
)

pytestmark = pytest.mark.usefixtures("infra")


async def test_flows_log_no_secrets() -> None:
    raw: list[logging.LogRecord] = []
    stream = io.StringIO()

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            raw.append(record)

    json_handler = logging.StreamHandler(stream)
    json_handler.setFormatter(JsonFormatter("auth"))
    root = logging.getLogger()
    old_level = root.level
    keep = Keep(level=logging.DEBUG)
    root.addHandler(keep)
    root.addHandler(json_handler)
    root.setLevel(logging.DEBUG)
    secrets: list[str] = [PASSWORD]
    try:
        async with auth_client(lockout_threshold=2, lockout_base_seconds=1) as (app, client):
            root.setLevel(logging.DEBUG)  # create_app reconfigures logging
            root.addHandler(keep)
            root.addHandler(json_handler)
            email, tokens = await verified_user(app, client)
            secrets += [tokens["access_token"], tokens["refresh_token"]]
            rotated = (
                await client.post(
                    "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
                )
            ).json()
            secrets += [rotated["access_token"], rotated["refresh_token"]]
            await client.post(
                "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
            )
            await client.post(
                "/api/v1/auth/login", json={"email": email, "password": "wrong guess 1"}
            )
            await client.post(
                "/api/v1/auth/login", json={"email": email, "password": "wrong guess 2"}
            )
            secrets += ["wrong guess 1", "wrong guess 2"]
            await client.post("/api/v1/auth/password/forgot", json={"email": email})
            [mail] = await emails(app, email, "reset_password")
            reset = token_from(mail)
            secrets.append(reset)
            await client.post(
                "/api/v1/auth/password/reset",
                json={"token": reset, "new_password": "another fine passphrase"},
            )
            secrets.append("another fine passphrase")
            await client.get("/api/v1/auth/sessions", headers=bearer(rotated["access_token"]))
            async with app.state.session_factory() as session:
                from sqlmodel import select

                from services.auth.models import Account

                account = (await session.exec(select(Account).where(Account.email == email))).one()
                secrets.append(account.password_hash)
            await client.post(
                "/api/v1/auth/register", json={"email": new_email(), "password": PASSWORD}
            )
    finally:
        root.removeHandler(keep)
        root.removeHandler(json_handler)
        root.setLevel(old_level)
    lines = [r.getMessage() + " " + repr(r.__dict__.get("args")) for r in raw]
    lines += stream.getvalue().splitlines()
    assert any("refresh token reuse" in line for line in lines)  # logging really was captured
    assert any("/api/v1/auth/login" in line for line in lines)
    for line in lines:
        for secret in secrets:
            assert secret not in line
        assert "$argon2" not in line
