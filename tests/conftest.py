"""Session-wide infrastructure: a migrated PostgreSQL database and a Redis db per worker.

The environment is set before any service builds its settings, so every app the
tests create talks to these servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.infra import Infra, prepare, start_infra

os.environ.setdefault("ENVIRONMENT", "test")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("JWT_ISSUER", "http://auth:8001")
os.environ.setdefault("JWT_AUDIENCE", "shopstack")


@pytest.fixture(scope="session")
def worker_id(request: pytest.FixtureRequest) -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "master")


@pytest.fixture(scope="session")
def infra(worker_id: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    root = Path(os.environ.get("TEST_DATA_DIR", tmp_path_factory.getbasetemp() / "infra"))
    admin_url, redis_base, started = start_infra(worker_id, root)
    result = prepare(worker_id, admin_url, redis_base)
    os.environ["DATABASE_URL"] = result.database_url
    os.environ["REDIS_URL"] = result.redis_url
    yield result
    for server in reversed(started):
        server.stop()  # type: ignore[attr-defined]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """End-to-end tests share one real stack: keep them on one xdist worker."""
    for item in items:
        if "/tests/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.xdist_group("e2e"))
        elif "/tests/faults/" in str(item.path):
            # Their own stack (they kill its processes), on one worker, next to e2e.
            item.add_marker(pytest.mark.xdist_group("faults"))
