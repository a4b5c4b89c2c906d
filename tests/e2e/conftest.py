"""The real stack for end-to-end tests: every service that exists, under gunicorn, on
free ports, with an SMTP sink whose maildir the tests read.

The stack gets its own database (`<test db>_e2e`, migrated here) on the test server
and its own Redis server: its worker, relays and consumers run in the background for
the whole session and must not take jobs or events meant for the integration tests
that share this xdist worker's database and Redis db.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from services.devstack.database import migrate
from services.devstack.embedded import EmbeddedRedis, free_port
from services.devstack.processes import Supervisor
from services.devstack.smtp_sink import SmtpSink, wait_for_mail
from services.devstack.stack import DEFAULT_PORTS, StackConfig, build_specs
from tests.support.infra import Infra, recreate_database, with_database

# Workers per process: one each keeps the boot fast; two for the gateway, the hop
# every request takes.
CONCURRENCY = {"gateway": 2}
STARTUP_TIMEOUT = 30.0
# Fast password hashing and short grace periods: tests, not production.
E2E_ENV = {
    "AUTH_ARGON2_MEMORY_KIB": "1024",
    "AUTH_ARGON2_TIME_COST": "1",
    "CURSOR_SECRET": "e2e-cursor-secret",
    "AUTH_KEY_ENCRYPTION_SECRET": "e2e-key-encryption-secret",
}


@dataclass
class Stack:
    config: StackConfig
    processes: Supervisor  # stop(name), start(name), kill(name, signal) for fault tests
    maildir: Path

    @property
    def gateway_url(self) -> str:
        if "gateway" not in self.processes.specs:
            raise LookupError("gateway/app.py does not exist yet: no gateway in this stack")
        return self.config.url("gateway")

    def url(self, service: str) -> str:
        if service not in self.processes.specs:
            running = sorted(self.processes.specs)
            raise LookupError(f"{service} is not part of this stack: {running}")
        return self.config.url(service)

    @property
    def names(self) -> list[str]:
        return list(self.processes.specs)

    def wait_for_mail(self, to: str, timeout: float = 10.0, count: int = 1) -> list[EmailMessage]:
        return wait_for_mail(self.maildir, to, timeout, count=count)

    def log(self, name: str) -> str:
        return self.processes.log_path(name).read_text(errors="replace")

    def restart(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Kill a process the hard way and bring it back (waits until healthy)."""
        self.processes.kill(name, sig)
        self.processes.stop(name, timeout=5.0)
        self.processes.start(name, timeout=STARTUP_TIMEOUT)


def _e2e_database(infra: Infra) -> str:
    name = f"{make_url(infra.database_url).database}_e2e"
    asyncio.run(recreate_database(infra.admin_database_url, name))
    url = with_database(infra.admin_database_url, name)
    migrate(url)
    return url


@pytest.fixture(scope="session")
def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    started = time.monotonic()
    root = tmp_path_factory.mktemp("e2e-stack")
    database_url = _e2e_database(infra)
    redis = EmbeddedRedis(root / "redis")
    sink = SmtpSink(root / "mail", free_port()).start()
    config = StackConfig(
        database_url=database_url,
        redis_url=redis.url,
        data_dir=root,
        ports={name: free_port() for name in DEFAULT_PORTS},
        smtp_port=sink.port,
        concurrency=CONCURRENCY,
        default_concurrency=1,
        environment="test",
        graceful_timeout=2,
        extra_env=E2E_ENV,
    )
    supervisor = Supervisor(root / "logs", graceful_timeout=10.0)
    try:
        for spec in build_specs(config):
            supervisor.add(spec)
        supervisor.start_all(timeout=STARTUP_TIMEOUT)
        print(f"e2e stack {sorted(supervisor.specs)} up in {time.monotonic() - started:.1f}s")
        yield Stack(config=config, processes=supervisor, maildir=sink.directory)
    finally:
        supervisor.stop_all()
        sink.stop()
        redis.stop()
