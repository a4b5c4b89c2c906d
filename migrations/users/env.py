"""Alembic environment of the users service: schema "users", version table users.alembic_version."""

from migrations.env_common import run
from services.users.models import metadata

run("users", metadata)
