from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.db import create_engine, session_factory
from services.common.settings import CommonSettings
from tests.integration.common.kit_models import SCHEMA, KitItem, KitOutbox
from tests.support.infra import Infra


@pytest.fixture(scope="session")
async def kit_engine(infra: Infra) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(CommonSettings(database_url=infra.database_url))
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        await conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        for model in (KitItem, KitOutbox):
            await conn.run_sync(model.__table__.create)  # type: ignore[attr-defined]
    yield engine
    await engine.dispose()


@pytest.fixture
async def kit_factory(kit_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    async with kit_engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {SCHEMA}.items, {SCHEMA}.outbox"))
    return session_factory(kit_engine)
