"""Make the stack's database exist and bring every service's schema to head."""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy.engine import make_url

from services.common.db import asyncpg_url
from services.common.migrate import ROOT, environments, upgrade_all


def _dsn(url: str, database: str | None = None) -> str:
    """asyncpg DSN for an SQLAlchemy URL (a unix-socket `?host=` survives)."""
    parsed = make_url(asyncpg_url(url)).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


async def _ensure(url: str) -> bool:
    name = make_url(asyncpg_url(url)).database or "postgres"
    try:
        conn = await asyncpg.connect(_dsn(url))
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await conn.close()
        return False
    admin = await asyncpg.connect(_dsn(url, "postgres"))
    try:
        # The name comes from our own configuration; quoted as an identifier anyway.
        quoted = '"' + name.replace('"', '""') + '"'
        await admin.execute(f"CREATE DATABASE {quoted}")
    finally:
        await admin.close()
    return True


def ensure_database(url: str) -> bool:
    """Create the URL's database when it is missing; True when it was created."""
    return asyncio.run(_ensure(url))


def migratable() -> list[str]:
    """Alembic environments of services that exist (others are still being written)."""
    return [n for n in environments() if (ROOT / "services" / n / "models.py").is_file()]


def migrate(url: str) -> list[str]:
    names = migratable()
    upgrade_all(asyncpg_url(url), names=names)
    return names
