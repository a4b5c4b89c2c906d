"""Alembic environment of the catalog service: schema "catalog", version table catalog.alembic_version."""

from migrations.env_common import run
from services.catalog.models import metadata

run("catalog", metadata)
