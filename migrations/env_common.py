"""The body of every service's Alembic env.py: its own schema, its own version table.

Only objects in the service's schema are compared by autogenerate, so one
service's migrations never touch another's tables.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from alembic import context
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from services.common.db import asyncpg_url

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/shopstack"


def database_url() -> str:
    url = context.config.attributes.get("database_url") or os.environ.get("DATABASE_URL")
    return asyncpg_url(url or DEFAULT_URL)


def run(schema: str, metadata: MetaData) -> None:
    def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
        if type_ == "schema":
            return name == schema
        return True

    def configure_and_run(connection: Connection) -> None:
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table="alembic_version",
            version_table_schema=schema,
            include_schemas=True,
            include_name=include_name,
            compare_type=True,
            compare_server_default=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        engine = create_async_engine(database_url(), poolclass=pool.NullPool)
        async with engine.begin() as connection:
            await connection.run_sync(configure_and_run)
        await engine.dispose()

    if context.is_offline_mode():
        context.configure(
            url=database_url(),
            target_metadata=metadata,
            version_table_schema=schema,
            literal_binds=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = context.config.attributes.get("connection")
    if connection is not None:
        configure_and_run(connection)
    else:
        asyncio.run(run_async())
