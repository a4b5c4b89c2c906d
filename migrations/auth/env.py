"""Alembic environment of the auth service: schema "auth", version table auth.alembic_version."""

from migrations.env_common import run
from services.auth.models import metadata

run("auth", metadata)
