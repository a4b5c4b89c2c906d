"""Every service's migrations go up, down and up again on an empty database, and the
migrated schema matches the models (autogenerate finds nothing to do)."""

from __future__ import annotations

import asyncio
import importlib
import os

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import create_async_engine

from services import registry
from services.common.migrate import downgrade_all, environments, upgrade_all
from tests.support.infra import Infra, recreate_database, with_database, worker_index

pytestmark = pytest.mark.slow


def service_tables(url: str) -> set[str]:
    async def query() -> set[str]:
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT table_schema || '.' || table_name FROM information_schema.tables "
                    "WHERE table_schema = ANY(:schemas) AND table_name <> 'alembic_version'"
                ),
                {"schemas": environments()},
            )
            result = {r[0] for r in rows}
        await engine.dispose()
        return result

    return asyncio.run(query())


def diff_against_models(url: str, schema: str) -> list:
    metadata: MetaData = importlib.import_module(f"services.{schema}.models").metadata

    def include_name(name, type_, parent_names) -> bool:
        return name == schema if type_ == "schema" else True

    def include_object(obj, name, type_, reflected, compare_to) -> bool:
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return getattr(table, "schema", schema) == schema

    async def compare() -> list:
        engine = create_async_engine(url)
        async with engine.connect() as conn:

            def run(sync_conn):
                ctx = MigrationContext.configure(
                    sync_conn,
                    opts={
                        "include_schemas": True,
                        "include_name": include_name,
                        "include_object": include_object,
                        "compare_type": True,
                        "version_table_schema": schema,
                    },
                )
                return compare_metadata(ctx, metadata)

            diff = await conn.run_sync(run)
        await engine.dispose()
        return diff

    return asyncio.run(compare())


def test_upgrade_downgrade_upgrade_and_no_drift(infra: Infra) -> None:
    name = f"shopstack_migrations_{worker_index(os.environ.get('PYTEST_XDIST_WORKER', 'gw0'))}"
    asyncio.run(recreate_database(infra.admin_database_url, name))
    url = with_database(infra.admin_database_url, name)
    envs = environments()
    assert envs == list(registry.SCHEMAS) and envs

    upgrade_all(url)
    first = service_tables(url)
    assert {s for s in (t.split(".")[0] for t in first)} == set(envs), "a service has no tables"
    downgrade_all(url)
    assert service_tables(url) == set()
    upgrade_all(url)
    assert service_tables(url) == first
    for schema in envs:
        assert diff_against_models(url, schema) == [], f"{schema}: models and migrations differ"
