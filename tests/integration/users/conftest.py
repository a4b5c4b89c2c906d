"""The users service in-process against the per-worker PostgreSQL and Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from services.common.state import provided
from services.common.streams import Event
from services.users.app import create_app
from services.users.consumers import on_registered
from services.users.settings import UsersSettings
from services.users.state import UsersState
from tests.support.asgi import running
from tests.support.infra import Infra
from tests.support.tokens import bearer, jwks_fetcher, mint


@pytest.fixture(scope="session")
def users_settings(infra: Infra) -> UsersSettings:
    return UsersSettings(
        database_url=infra.database_url,
        redis_url=infra.redis_url,
        background_tasks=False,
        cursor_secret="users-test-cursor-secret",
    )


@pytest.fixture
async def app(users_settings: UsersSettings) -> AsyncIterator[FastAPI]:
    application = create_app(users_settings, jwks_fetcher=jwks_fetcher)
    yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with running(app) as c:
        yield c


class Person:
    """A user with a fresh id and a valid access token."""

    def __init__(self, role: str = "user") -> None:
        self.id = str(uuid.uuid4())
        self.role = role
        self.token = mint(self.id, role=role)

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


async def register(app: FastAPI, person: Person, email: str, **extra: Any) -> None:
    """Deliver a `user.registered` event to the real handler (as the consumer would)."""
    handler = on_registered(app.state.session_factory, provided(app, UsersState).profile_cache)
    data = {"user_id": person.id, "email": email, "role": person.role, **extra}
    event_id = str(uuid.uuid4())
    await handler(Event(event_id, "user.registered", data, None, "0-1"))


async def outbox_topics(app: FastAPI, user_id: str) -> list[str]:
    async with app.state.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT topic FROM users.outbox WHERE payload->>'user_id' = :u "
                "ORDER BY created_at, id"
            ),
            {"u": user_id},
        )
        return [r[0] for r in rows]
