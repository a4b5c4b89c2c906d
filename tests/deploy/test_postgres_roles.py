"""deploy/postgres/init: per-service roles and schemas on a real PostgreSQL. The migrator
runs every migration; each service role reads and writes its own schema only."""

from __future__ import annotations

import asyncio
import os
import subprocess

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from services import registry
from services.common.migrate import upgrade_all
from tests.deploy.support import DEPLOY
from tests.support.infra import Infra, _dsn, recreate_database, with_database

SCRIPT = DEPLOY / "postgres" / "init" / "10-roles-and-schemas.sh"
SCHEMAS = registry.SCHEMAS


async def test_roles_schemas_and_least_privilege(infra: Infra) -> None:
    name = f"shopstack_deploy_{os.environ.get('PYTEST_XDIST_WORKER', 'master')}"
    await recreate_database(infra.admin_database_url, name)
    admin = make_url(_dsn(infra.admin_database_url))
    env = {
        **os.environ,
        "POSTGRES_USER": admin.username or "postgres",
        "POSTGRES_DB": name,
        "PGHOST": str(admin.query.get("host") or admin.host or "127.0.0.1"),
        "PGPORT": str(admin.port or 5432),
        "MIGRATOR_DB_PASSWORD": "m",
    }
    env.update({f"{s.upper()}_DB_PASSWORD": f"pw-{s}" for s in SCHEMAS})
    for _ in range(2):  # idempotent: a second run changes nothing and does not fail
        subprocess.run(["bash", str(SCRIPT)], env=env, check=True, capture_output=True, timeout=60)

    def url_as(role: str) -> str:
        return (
            make_url(with_database(infra.admin_database_url, name))
            .set(username=role)
            .render_as_string(hide_password=False)
        )

    await asyncio.to_thread(upgrade_all, url_as("shopstack_migrator"))

    conn = await asyncpg.connect(_dsn(url_as("shopstack_auth")))
    try:
        assert await conn.fetchval("SELECT count(*) FROM auth.outbox") == 0
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetchval("SELECT count(*) FROM catalog.products")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE auth.intruder (i int)")
    finally:
        await conn.close()
    for schema in SCHEMAS:
        conn = await asyncpg.connect(_dsn(url_as(f"shopstack_{schema}")))
        try:
            tables = await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 "
                "AND has_table_privilege(format('%I.%I', table_schema, table_name), 'INSERT')",
                schema,
            )
            assert tables, schema
        finally:
            await conn.close()
