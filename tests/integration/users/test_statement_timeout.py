"""DB_STATEMENT_TIMEOUT: a write stuck behind another transaction's lock is cancelled by
PostgreSQL and answered 503 problem+json (Retry-After), never a 500 or a hung request,
and nothing of it is written."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from services.users.app import create_app
from services.users.settings import UsersSettings
from tests.integration.users.conftest import Person
from tests.support.asgi import running
from tests.support.tokens import jwks_fetcher

ME = "/api/v1/users/me"


@pytest.fixture
async def short(users_settings: UsersSettings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = users_settings.model_copy(
        update={"db_statement_timeout": 0.3, "db_idle_in_transaction_timeout": 2.0}
    )
    app = create_app(settings, jwks_fetcher=jwks_fetcher)
    async with running(app) as client:
        yield app, client


async def test_the_limits_are_set_on_every_connection(
    short: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, _ = short
    async with app.state.engine.connect() as conn:
        statement = (await conn.execute(text("SHOW statement_timeout"))).scalar_one()
        idle = (await conn.execute(text("SHOW idle_in_transaction_session_timeout"))).scalar_one()
    assert (statement, idle) == ("300ms", "2s")


async def test_a_write_waiting_on_a_lock_is_a_503_and_writes_nothing(
    short: tuple[FastAPI, httpx.AsyncClient], users_settings: UsersSettings
) -> None:
    _, client = short
    owner = Person()
    created = await client.patch(ME, json={"display_name": "Before"}, headers=owner.headers)
    assert created.status_code == 200
    dsn = users_settings.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    locker = await asyncpg.connect(dsn)
    try:
        # Another writer holds the row (a long transaction, a stuck migration...).
        transaction = locker.transaction()
        await transaction.start()
        await locker.execute("SELECT 1 FROM users.profiles WHERE id = $1 FOR UPDATE", owner.id)
        started = time.monotonic()
        # (bounded here too: without the limit this would wait for the lock forever)
        stuck = await asyncio.wait_for(
            client.patch(ME, json={"display_name": "After"}, headers=owner.headers), 10
        )
        waited = time.monotonic() - started
        await transaction.rollback()
    finally:
        await locker.close()
    assert stuck.status_code == 503
    assert stuck.headers["content-type"] == "application/problem+json"
    assert stuck.headers["retry-after"]
    assert 0.25 < waited < 5  # cancelled at the limit, not left hanging
    now = await client.get(ME, headers=owner.headers)
    assert now.json()["display_name"] == "Before"
    again = await client.patch(ME, json={"display_name": "After"}, headers=owner.headers)
    assert again.status_code == 200 and again.json()["display_name"] == "After"
