"""Where the tests' PostgreSQL and Redis are: TEST_DATABASE_URL / TEST_REDIS_URL when set,
embedded servers (PostgreSQL 16, Valkey: tools/devstack/embedded.py) otherwise. One
database and one Redis db index per xdist worker, so parallel workers never see each
other's rows or keys."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from services.common.db import asyncpg_url
from services.common.migrate import ROOT


@dataclass
class Infra:
    database_url: str  # the per-worker database, migrated
    admin_database_url: str  # the server's maintenance database
    redis_url: str  # the per-worker db index, flushed at start
    lock: object = field(default=None, repr=False)  # held for the session: see _claim


def worker_index(worker_id: str) -> int:
    return int(worker_id[2:]) if worker_id.startswith("gw") else 0


def _dsn(url: str) -> str:
    """asyncpg DSN for an SQLAlchemy URL (keeps a unix-socket host query)."""
    return (
        make_url(asyncpg_url(url))
        .set(drivername="postgresql")
        .render_as_string(hide_password=False)
    )


async def recreate_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(_dsn(admin_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def with_database(url: str, name: str) -> str:
    return make_url(asyncpg_url(url)).set(database=name).render_as_string(hide_password=False)


def with_redis_db(url: str, index: int) -> str:
    base, _, last = url.rstrip("/").rpartition("/")
    if last.isdigit():
        return f"{base}/{index}"
    return f"{url.rstrip('/')}/{index}"


def start_infra(worker_id: str, data_root: Path) -> tuple[str, str, list[object]]:
    """Admin DB URL and Redis base URL, starting embedded servers if none are configured."""
    started: list[object] = []
    db_url = os.environ.get("TEST_DATABASE_URL")
    redis_url = os.environ.get("TEST_REDIS_URL")
    if not db_url:
        from tools.devstack.embedded import EmbeddedPostgres

        pg = EmbeddedPostgres(data_root / "pg")
        started.append(pg)
        db_url = pg.url()
    if not redis_url:
        from tools.devstack.embedded import EmbeddedRedis

        rd = EmbeddedRedis(data_root / f"redis-{worker_id}")
        started.append(rd)
        redis_url = rd.url
    return db_url, redis_url, started


def _claim(admin_url: str, redis_base: str, index: int) -> object:
    """Two test runs against the same servers would drop each other's database and flush
    each other's Redis db (the names come from the xdist index): the second run's worker
    waits here, on a lock file per (servers, index), until the first one's is done."""
    servers = hashlib.sha256(f"{admin_url}|{redis_base}|{index}".encode()).hexdigest()[:16]
    handle = open(Path(tempfile.gettempdir()) / f"shopstack-test-{servers}.lock", "w")
    fcntl.flock(handle, fcntl.LOCK_EX)  # released when the process exits
    return handle


def prepare(worker_id: str, admin_url: str, redis_base: str) -> Infra:
    from services.common.migrate import environments, upgrade_all

    index = worker_index(worker_id)
    lock = _claim(admin_url, redis_base, index)
    name = f"shopstack_test_{index}"
    asyncio.run(recreate_database(admin_url, name))
    database_url = with_database(admin_url, name)
    upgrade_all(
        database_url,
        names=[n for n in environments() if (ROOT / "services" / n / "models.py").exists()],
    )
    redis_url = with_redis_db(redis_base, 1 + index % 15)
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    return Infra(
        database_url=database_url, admin_database_url=admin_url, redis_url=redis_url, lock=lock
    )
