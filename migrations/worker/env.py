"""Alembic environment of the worker: schema "worker", version table worker.alembic_version."""

from migrations.env_common import run
from services.worker.models import metadata

run("worker", metadata)
