"""Forgotten password, one-time reset (1 hour) and authenticated password change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import update

from services.auth.crypto import token_hash
from services.auth.models import OneTimeToken
from tests.integration.auth.support import (
    PASSWORD,
    auth_client,
    bearer,
    emails,
    is_problem,
    link_from,
    login,
    new_email,
    token_from,
    verified_user,
)

pytestmark = pytest.mark.usefixtures("infra")
NEW = "a brand new passphrase 42"
ME = "/api/v1/auth/sessions"


async def test_forgot_answers_alike_and_mails_only_real_accounts() -> None:
    async with auth_client() as (app, client):
        email, _ = await verified_user(app, client)
        stranger = new_email()
        known = await client.post("/api/v1/auth/password/forgot", json={"email": email})
        unknown = await client.post("/api/v1/auth/password/forgot", json={"email": stranger})
        assert known.status_code == unknown.status_code == 202
        assert known.json() == unknown.json()
        [mail] = await emails(app, email, "reset_password")
        assert link_from(mail).startswith("http://localhost:3000/reset-password?token=")
        assert await emails(app, stranger) == []


async def test_reset_works_once_and_revokes_every_session() -> None:
    async with auth_client() as (app, client):
        email, tokens = await verified_user(app, client)
        await client.post("/api/v1/auth/password/forgot", json={"email": email})
        [mail] = await emails(app, email, "reset_password")
        token = token_from(mail)
        resets = REGISTRY.get_sample_value("auth_password_resets_total") or 0.0
        weak = await client.post(
            "/api/v1/auth/password/reset", json={"token": token, "new_password": "password"}
        )
        assert is_problem(weak, 422)
        done = await client.post(
            "/api/v1/auth/password/reset", json={"token": token, "new_password": NEW}
        )
        assert done.status_code == 204
        assert REGISTRY.get_sample_value("auth_password_resets_total") == resets + 1
        again = await client.post(
            "/api/v1/auth/password/reset", json={"token": token, "new_password": NEW + "!"}
        )
        assert is_problem(again, 400)
        assert is_problem(await client.get(ME, headers=bearer(tokens["access_token"])), 401)
        refused = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert is_problem(refused, 401)
        old = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert is_problem(old, 401)
        await login(client, email, NEW)
        assert len(await emails(app, email, "password_changed")) == 1


async def test_expired_reset_token_is_refused() -> None:
    async with auth_client() as (app, client):
        email, _ = await verified_user(app, client)
        await client.post("/api/v1/auth/password/forgot", json={"email": email})
        [mail] = await emails(app, email, "reset_password")
        token = token_from(mail)
        async with app.state.session_factory() as session, session.begin():
            await session.exec(
                update(OneTimeToken)
                .where(OneTimeToken.token_hash == token_hash(token))  # type: ignore[arg-type]
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        response = await client.post(
            "/api/v1/auth/password/reset", json={"token": token, "new_password": NEW}
        )
        assert is_problem(response, 400)
        await login(client, email)  # the password did not change


async def test_reset_token_lives_one_hour() -> None:
    async with auth_client() as (app, client):
        email, _ = await verified_user(app, client)
        await client.post("/api/v1/auth/password/forgot", json={"email": email})
        [mail] = await emails(app, email, "reset_password")
        async with app.state.session_factory() as session:
            row = await session.exec(
                OneTimeToken.__table__.select().where(  # type: ignore[attr-defined]
                    OneTimeToken.token_hash == token_hash(token_from(mail))
                )
            )
            created, expires = next((r.created_at, r.expires_at) for r in row)
        assert expires - created == timedelta(hours=1)


async def test_verify_token_cannot_reset_a_password() -> None:
    async with auth_client() as (app, client):
        email = new_email()
        await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        [mail] = await emails(app, email, "verify_email")
        response = await client.post(
            "/api/v1/auth/password/reset", json={"token": token_from(mail), "new_password": NEW}
        )
        assert is_problem(response, 400)


async def test_change_password_notifies_and_logs_out_other_devices() -> None:
    async with auth_client() as (app, client):
        email, here = await verified_user(app, client)
        elsewhere = await login(client, email)
        wrong = await client.post(
            "/api/v1/auth/password/change",
            json={"current_password": "not it at all", "new_password": NEW},
            headers=bearer(here["access_token"]),
        )
        assert is_problem(wrong, 400)
        anonymous = await client.post(
            "/api/v1/auth/password/change",
            json={"current_password": PASSWORD, "new_password": NEW},
        )
        assert is_problem(anonymous, 401)
        changed = await client.post(
            "/api/v1/auth/password/change",
            json={"current_password": PASSWORD, "new_password": NEW},
            headers=bearer(here["access_token"]),
        )
        assert changed.status_code == 204
        [notice] = await emails(app, email, "password_changed")
        assert notice["context"] == {}
        assert (await client.get(ME, headers=bearer(here["access_token"]))).status_code == 200
        assert is_problem(await client.get(ME, headers=bearer(elsewhere["access_token"])), 401)
        await login(client, email, NEW)
