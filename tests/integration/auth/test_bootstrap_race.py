"""Two gunicorn workers bootstrapping the same admin at once: one inserts, the other hits
the unique email (a real IntegrityError from PostgreSQL) and must carry on booting."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlmodel import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

import services.auth.admin as admin_module
from services.auth.app import _bootstrap_admin
from services.auth.context import AuthContext
from services.auth.models import Account
from services.common.state import provided
from tests.integration.auth.support import PASSWORD, auth_client, login, new_email, settings

pytestmark = pytest.mark.usefixtures("infra")


async def test_concurrent_bootstraps_create_one_admin_and_both_continue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    email = new_email()
    config = settings(
        environment="development", bootstrap_admin_email=email, bootstrap_admin_password=PASSWORD
    )
    # Both callers must read "no such account" before either inserts: that is the race
    # two booting workers run. Only the timing is arranged; the database is real.
    real_lookup = admin_module.account_by_email
    looked: list[object] = []
    both_looked = asyncio.Event()

    async def lookup_then_wait(session: AsyncSession, address: str) -> Any:
        found = await real_lookup(session, address)
        looked.append(found)
        if len(looked) == 2:
            both_looked.set()
        await asyncio.wait_for(both_looked.wait(), 10)
        return found

    async with auth_client(environment="development") as (app, client):
        monkeypatch.setattr(admin_module, "account_by_email", lookup_then_wait)
        hasher = provided(app, AuthContext).hasher
        results = await asyncio.gather(
            _bootstrap_admin(app, config, hasher),
            _bootstrap_admin(app, config, hasher),
            return_exceptions=True,
        )
        monkeypatch.undo()
        assert looked == [None, None], "the two bootstraps did not race"
        assert results == [None, None]  # neither raised: the loser carried on
        async with app.state.session_factory() as session:
            count = await session.exec(
                select(func.count()).select_from(Account).where(Account.email == email)
            )
            assert count.one() == 1
        tokens = await login(client, email)
        assert tokens["token_type"] == "bearer"
