"""Helpers for the auth tests: apps with cheap hashing, outbox readers, user set-up."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
from fastapi import FastAPI
from sqlmodel import col, select

from services.auth.app import create_app
from services.auth.models import Outbox
from services.auth.settings import AuthSettings
from services.common.sealing import unseal
from tests.support.asgi import running

PASSWORD = "correct horse battery staple"
FAST = {
    # Cheap argon2id for tests; production keeps the OWASP default.
    "argon2_memory_kib": 1024,
    "argon2_time_cost": 1,
    "argon2_parallelism": 1,
    "background_tasks": False,
    "rate_login_ip": "10000/minute",
    "rate_login_account": "10000/minute",
    "rate_register_ip": "10000/minute",
    "rate_email_ip": "10000/minute",
    "rate_email_account": "10000/minute",
    # No response-time floor (tests/security/test_enumeration.py checks it).
    "uniform_response_seconds": 0.0,
}


def settings(**overrides: Any) -> AuthSettings:
    return AuthSettings(**(FAST | overrides))


@asynccontextmanager
async def auth_client(**overrides: Any) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings(**overrides))
    async with running(app) as client:
        yield app, client


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def outbox(app: FastAPI, *, to: str | None = None, kind: str = "email") -> list[Outbox]:
    async with app.state.session_factory() as session:
        stmt = select(Outbox).where(Outbox.kind == kind).order_by(col(Outbox.created_at))
        rows = list(await session.exec(stmt))
    if to is None:
        return rows
    return [r for r in rows if r.payload.get("to") == to or r.payload.get("email") == to]


async def emails(app: FastAPI, to: str, template: str | None = None) -> list[dict[str, Any]]:
    rows = await outbox(app, to=to)
    return [r.payload for r in rows if template is None or r.topic == template]


def link_from(payload: dict[str, Any]) -> str:
    """The link in an email row: auth seals it for the worker (services.common.sealing)."""
    opened = unseal(AuthSettings().email_link_secret, payload["sealed"])
    return str(opened["link"])


def token_from(payload: dict[str, Any]) -> str:
    return parse_qs(urlparse(link_from(payload)).query)["token"][0]


async def register(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> None:
    response = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": password}
    )
    assert response.status_code == 202, response.text


async def login(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, **kw: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/auth/login", json={"email": email, "password": password}, **kw
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def verified_user(
    app: FastAPI, client: httpx.AsyncClient, email: str | None = None
) -> tuple[str, dict[str, Any]]:
    """Register, verify and log in a new user: (email, token response)."""
    email = email or new_email()
    await register(client, email)
    [mail] = await emails(app, email, "verify_email")
    response = await client.post("/api/v1/auth/verify-email", json={"token": token_from(mail)})
    assert response.status_code == 204, response.text
    return email, await login(client, email)


def is_problem(response: httpx.Response, status: int) -> bool:
    return (
        response.status_code == status
        and response.headers["content-type"].startswith("application/problem+json")
        and response.json()["status"] == status
    )
