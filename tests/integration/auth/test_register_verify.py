"""Registration, email verification and resending, with no account enumeration."""

from __future__ import annotations

import pytest
from jose import jwt
from prometheus_client import REGISTRY
from sqlmodel import select

from services.auth.models import Account
from tests.integration.auth.support import (
    PASSWORD,
    auth_client,
    emails,
    is_problem,
    link_from,
    login,
    new_email,
    outbox,
    register,
    token_from,
    verified_user,
)

pytestmark = pytest.mark.usefixtures("infra")


async def test_register_creates_unverified_account_email_and_event() -> None:
    async with auth_client() as (app, client):
        before = REGISTRY.get_sample_value("auth_registrations_total") or 0.0
        email = new_email()
        response = await client.post(
            "/api/v1/auth/register", json={"email": email.upper(), "password": PASSWORD}
        )
        assert response.status_code == 202
        async with app.state.session_factory() as session:
            account = (await session.exec(select(Account).where(Account.email == email))).one()
        assert account.email_verified is False
        assert account.password_hash.startswith("$argon2id$")
        [mail] = await emails(app, email, "verify_email")
        assert link_from(mail).startswith("http://localhost:3000/verify-email?token=")
        events = [e for e in await outbox(app, kind="event") if e.payload.get("email") == email]
        assert [e.topic for e in events] == ["user.registered"]
        assert events[0].payload["user_id"] == str(account.id)
        assert events[0].payload["role"] == "user"
        assert REGISTRY.get_sample_value("auth_registrations_total") == before + 1


async def test_duplicate_registration_answers_the_same_and_warns_the_owner() -> None:
    async with auth_client() as (app, client):
        email, _ = await verified_user(app, client)
        first = await client.post(
            "/api/v1/auth/register", json={"email": new_email(), "password": PASSWORD}
        )
        again = await client.post(
            "/api/v1/auth/register", json={"email": email.title(), "password": PASSWORD + "x"}
        )
        assert again.status_code == first.status_code == 202
        assert again.json() == first.json()
        [attempt] = await emails(app, email, "register_attempt")
        assert attempt["context"]["login_link"].startswith("http://localhost:3000/")
        assert "reset_link" in attempt["context"]
        # The original password still works: the duplicate changed nothing.
        await login(client, email)


async def test_duplicate_of_unverified_account_sends_a_fresh_link() -> None:
    async with auth_client() as (app, client):
        email = new_email()
        await register(client, email)
        await register(client, email)
        first, second = await emails(app, email, "verify_email")
        # Only the newest link works.
        old = await client.post("/api/v1/auth/verify-email", json={"token": token_from(first)})
        assert is_problem(old, 400)
        new = await client.post("/api/v1/auth/verify-email", json={"token": token_from(second)})
        assert new.status_code == 204


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short1!", "between 8 and 128"),
        ("x" * 129, "between 8 and 128"),
        ("password1", "most common"),
        ("Qwertyuiop", "most common"),
        ("SELF", "email"),
    ],
)
async def test_password_policy(password: str, reason: str) -> None:
    async with auth_client() as (_, client):
        email = new_email()
        response = await client.post(
            "/api/v1/auth/register",
            json={"email": email, "password": email if password == "SELF" else password},
        )
        assert is_problem(response, 422)
        [error] = response.json()["errors"]
        assert error["field"] == "body.password"
        assert reason in error["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "password": PASSWORD},
        {"email": "a@example.com"},
        {"email": "a@example.com", "password": PASSWORD, "role": "admin"},
        {"email": ["x"], "password": PASSWORD},
    ],
)
async def test_bad_register_bodies_are_422(body: dict[str, object]) -> None:
    async with auth_client() as (_, client):
        response = await client.post("/api/v1/auth/register", json=body)
        assert is_problem(response, 422)
        assert response.json()["errors"]


async def test_verify_once_sets_claim_and_emits_event() -> None:
    async with auth_client() as (app, client):
        email = new_email()
        await register(client, email)
        before = await login(client, email)
        assert jwt.get_unverified_claims(before["access_token"])["email_verified"] is False
        [mail] = await emails(app, email, "verify_email")
        token = token_from(mail)
        assert (
            await client.post("/api/v1/auth/verify-email", json={"token": token})
        ).status_code == 204
        reused = await client.post("/api/v1/auth/verify-email", json={"token": token})
        assert is_problem(reused, 400)
        bogus = await client.post("/api/v1/auth/verify-email", json={"token": "nope"})
        assert is_problem(bogus, 400)
        after = await login(client, email)
        assert jwt.get_unverified_claims(after["access_token"])["email_verified"] is True
        topics = [e.topic for e in await outbox(app, kind="event")]
        assert "user.email_verified" in topics


async def test_unverified_login_can_be_refused_by_setting() -> None:
    async with auth_client(allow_unverified_login=False) as (_, client):
        email = new_email()
        await register(client, email)
        response = await client.post(
            "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
        )
        assert is_problem(response, 403)
        assert response.json()["type"].endswith("email-not-verified")


async def test_resend_sends_new_link_only_to_unverified_accounts() -> None:
    async with auth_client() as (app, client):
        email = new_email()
        await register(client, email)
        verified, _ = await verified_user(app, client)
        answers = []
        for target in (email, verified, new_email()):
            response = await client.post("/api/v1/auth/verify-email/resend", json={"email": target})
            assert response.status_code == 202
            answers.append(response.json())
        assert answers[0] == answers[1] == answers[2]
        assert len(await emails(app, email, "verify_email")) == 2
        assert len(await emails(app, verified, "verify_email")) == 1


async def test_owner_is_not_flooded_by_repeated_attempts() -> None:
    async with auth_client(rate_email_account="2/hour") as (app, client):
        email, _ = await verified_user(app, client)
        for _ in range(4):
            await register(client, email)  # always 202
        assert len(await emails(app, email, "register_attempt")) == 2
