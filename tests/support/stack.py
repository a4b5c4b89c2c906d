"""The real stack as processes, for end-to-end and fault tests: every service that
exists, under gunicorn, on free ports, with its own database, its own Redis server and
an SMTP sink whose maildir the tests read.

A stack owns its database and Redis: its worker, relays and consumers run in the
background for the whole session and must not take jobs or events meant for the
integration tests that share this xdist worker's database and Redis db. Fault tests
build a second stack (they kill its processes) next to the shared e2e one.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.support.infra import Infra, recreate_database, with_database
from tools.devstack.database import migrate
from tools.devstack.embedded import EmbeddedRedis, free_port
from tools.devstack.processes import Supervisor
from tools.devstack.smtp_sink import SmtpSink, wait_for_mail
from tools.devstack.stack import DEFAULT_PORTS, StackConfig, build_specs

# Workers per process: one each keeps the boot fast; two for the gateway, the hop
# every request takes.
CONCURRENCY = {"gateway": 2}
STARTUP_TIMEOUT = 30.0
# Fast password hashing and short grace periods: tests, not production.
TEST_ENV = {
    "AUTH_ARGON2_MEMORY_KIB": "1024",
    "AUTH_ARGON2_TIME_COST": "1",
    "CURSOR_SECRET": "e2e-cursor-secret",
    "AUTH_KEY_ENCRYPTION_SECRET": "e2e-key-encryption-secret",
    # Several stacks (e2e, fuzz, faults, bench smoke) and the integration tests share one
    # PostgreSQL (max_connections 100 by default): small pools per process.
    "DB_POOL_SIZE": "3",
    "DB_MAX_OVERFLOW": "4",
}


@dataclass
class Stack:
    config: StackConfig
    processes: Supervisor  # stop(name), start(name), kill(name, signal) for fault tests
    maildir: Path
    redis: EmbeddedRedis  # the stack's own Redis server (fault tests stop it)
    sink: SmtpSink

    @property
    def gateway_url(self) -> str:
        if "gateway" not in self.processes.specs:
            raise LookupError("gateway/app.py does not exist yet: no gateway in this stack")
        return self.config.url("gateway")

    @property
    def database_url(self) -> str:
        return self.config.database_url

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


def fresh_database(infra: Infra, suffix: str) -> str:
    """A fresh, migrated `<test db>_<suffix>` on the test server."""
    name = f"{make_url(infra.database_url).database}_{suffix}"
    asyncio.run(recreate_database(infra.admin_database_url, name))
    url = with_database(infra.admin_database_url, name)
    migrate(url)
    return url


@contextmanager
def running_stack(
    root: Path,
    database_url: str,
    *,
    sink: SmtpSink | None = None,
    concurrency: Mapping[str, int] = CONCURRENCY,
    extra_env: Mapping[str, str] | None = None,
    label: str = "stack",
) -> Iterator[Stack]:
    """Start the whole stack on `database_url` (migrated already) with a new Redis under
    `root`; the SMTP sink is `sink` (started here) or a plain maildir sink."""
    started = time.monotonic()
    redis = EmbeddedRedis(root / "redis")
    sink = (sink or SmtpSink(root / "mail", free_port())).start()
    config = StackConfig(
        database_url=database_url,
        redis_url=redis.url,
        data_dir=root,
        ports={name: free_port() for name in DEFAULT_PORTS},
        smtp_port=sink.port,
        concurrency=dict(concurrency),
        default_concurrency=1,
        environment="test",
        graceful_timeout=2,
        extra_env={**TEST_ENV, **(extra_env or {})},
    )
    supervisor = Supervisor(root / "logs", graceful_timeout=10.0)
    try:
        for spec in build_specs(config):
            supervisor.add(spec)
        supervisor.start_all(timeout=STARTUP_TIMEOUT)
        print(f"{label} {sorted(supervisor.specs)} up in {time.monotonic() - started:.1f}s")
        yield Stack(
            config=config, processes=supervisor, maildir=sink.directory, redis=redis, sink=sink
        )
    finally:
        supervisor.stop_all()
        sink.stop()
        redis.stop()
