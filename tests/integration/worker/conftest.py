from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.db import create_engine, session_factory
from services.common.settings import CommonSettings
from services.worker.settings import WorkerSettings
from tests.integration.worker.models import SCHEMA, TABLES
from tests.integration.worker.smtp import SmtpSink
from tests.support.infra import Infra


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def smtp(smtp_sink: SmtpSink) -> Iterator[SmtpSink]:
    smtp_sink.reset()
    if smtp_sink.controller is None:
        smtp_sink.start()
    yield smtp_sink
    smtp_sink.reset()
    if smtp_sink.controller is None:
        smtp_sink.start()


@pytest.fixture(scope="session")
async def wt_engine(infra: Infra) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(CommonSettings(database_url=infra.database_url))
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        await conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        for model in TABLES:
            await conn.run_sync(model.__table__.create)  # type: ignore[attr-defined]
    yield engine
    await engine.dispose()


@pytest.fixture
async def factory(wt_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    async with wt_engine.begin() as conn:
        await conn.execute(
            text(
                f"TRUNCATE {SCHEMA}.outbox, {SCHEMA}.inbox, {SCHEMA}.effects, "
                "worker.email_deliveries, worker.dead_emails"
            )
        )
    return session_factory(wt_engine)


@pytest.fixture
async def redis(infra: Infra) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(infra.redis_url)
    # Other suites share this Redis db: start from an empty email queue and no streams.
    for pattern in ("saq:*emails*", "events:*"):
        keys = [k async for k in client.scan_iter(match=pattern)]
        if keys:
            await client.delete(*keys)
    yield client
    await client.aclose()


def fast_settings(infra: Infra, smtp: SmtpSink, **overrides: Any) -> WorkerSettings:
    """Small delays so retries, sweeps and sampling happen within a test's time."""
    values: dict[str, Any] = {
        "database_url": infra.database_url,
        "redis_url": infra.redis_url,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp.port,
        "smtp_timeout": 5.0,
        "worker_concurrency": 4,
        "worker_max_attempts": 6,
        "worker_retry_delay_seconds": 0.05,
        "worker_retry_max_delay_seconds": 0.2,
        "worker_job_heartbeat_seconds": 1,
        "worker_sweep_interval_seconds": 1,
        "worker_sweep_abort_seconds": 0.2,
        "worker_shutdown_grace_seconds": 0.3,
        "worker_sample_interval_seconds": 0.2,
    }
    values.update(overrides)
    return WorkerSettings(**values)


@pytest.fixture
def settings(infra: Infra, smtp: SmtpSink, redis: aioredis.Redis) -> WorkerSettings:
    return fast_settings(infra, smtp)
