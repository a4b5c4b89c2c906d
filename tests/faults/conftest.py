"""The faults stack: a second real stack that the fault tests may break (kill its
services, stop its Redis, crash its PostgreSQL), so the shared e2e stack is never hurt.

It runs on a private PostgreSQL server (`tests.faults.postgres`), database
`<test db>_faults`, with its own embedded Redis and an SMTP sink whose answer can be
slowed down. Timers are short so that breaking and healing fit in seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from tests.faults.helpers import ADMIN_EMAIL, ADMIN_PASSWORD, SlowSink, wait_ready
from tests.faults.postgres import PrivatePostgres
from tests.support.infra import Infra
from tests.support.stack import Stack, running_stack
from tools.devstack.database import ensure_database, migrate
from tools.devstack.embedded import free_port

FAULTS_ENV = {
    # Heal fast: the gateway polls health every second and probes an open circuit
    # after 2 s; a killed worker's job is swept after 1 s without a heartbeat.
    "GATEWAY_HEALTH_INTERVAL": "1",
    "GATEWAY_CIRCUIT_OPEN_SECONDS": "2",
    "WORKER_JOB_HEARTBEAT_SECONDS": "1",
    "WORKER_SWEEP_INTERVAL_SECONDS": "1",
    "WORKER_SWEEP_ABORT_SECONDS": "0.2",
    "WORKER_RETRY_DELAY_SECONDS": "0.2",
    "WORKER_RETRY_MAX_DELAY_SECONDS": "1",
    # Anonymous traffic keeps a small limit (the fail-open test reaches it with one
    # client address); the load of the other tests comes from many addresses.
    "GATEWAY_RATE_ANONYMOUS": "40/minute",
    "GATEWAY_RATE_USER": "100000/minute",
    "GATEWAY_RATE_AUTH": "100000/minute",
    "AUTH_RATE_LOGIN_IP": "100000/minute",
    "AUTH_RATE_LOGIN_ACCOUNT": "100000/minute",
    "AUTH_RATE_REGISTER_IP": "100000/hour",
    "AUTH_RATE_EMAIL_IP": "100000/hour",
    "AUTH_RATE_EMAIL_ACCOUNT": "100000/hour",
}


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        yield server
    finally:
        server.destroy()


def create_admin(database_url: str, redis_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url}
    done = subprocess.run(
        [sys.executable, "-m", "services.auth.manage", "create-admin", "--email", ADMIN_EMAIL,
         "--password-stdin"],
        input=ADMIN_PASSWORD, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="session")
def faults(
    infra: Infra, private_pg: PrivatePostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("faults-stack")
    database_url = private_pg.url(f"{make_url(infra.database_url).database}_faults")
    ensure_database(database_url)
    migrate(database_url)
    sink = SlowSink(root / "mail", free_port())
    with running_stack(
        root, database_url, sink=sink, extra_env=FAULTS_ENV, label="faults stack"
    ) as stack:
        create_admin(database_url, stack.redis.url)
        yield stack


@pytest.fixture
def stack(faults: Stack) -> Stack:
    """The faults stack, every process ready (a previous test may have broken it)."""
    wait_ready(faults)
    return faults
