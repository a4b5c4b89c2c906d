"""The real stack under test: a scratch database seeded for the bench, and gunicorn
processes (the same config and worker count for every one of them) on free ports."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from services.common.migrate import ROOT, environments, upgrade_all
from tests.support.infra import _dsn, recreate_database, with_database
from tools.bench import nginx
from tools.devstack import seed as catalog_seed
from tools.devstack.embedded import free_port

GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
BENCH_SECRET = "bench-cursor-secret-not-for-production"
ADMIN_EMAIL = "bench-admin@example.com"
ADMIN_PASSWORD = "bench-Admin-pass-1234"


@dataclass(frozen=True)
class AppSpec:
    name: str
    factory: str  # gunicorn app spec
    module: str  # must be importable for the app to count as available


APPS = {
    "raw": AppSpec("raw", "tools.bench.baselines:raw_app()", "tools.bench.baselines"),
    "fastapi": AppSpec("fastapi", "tools.bench.baselines:fastapi_app()", "tools.bench.baselines"),
    "auth": AppSpec("auth", "services.auth.app:create_app()", "services.auth.app"),
    "catalog": AppSpec("catalog", "services.catalog.app:create_app()", "services.catalog.app"),
    "users": AppSpec("users", "services.users.app:create_app()", "services.users.app"),
    "gateway": AppSpec("gateway", "gateway.app:create_app()", "gateway.app"),
}


def exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@dataclass
class Process:
    name: str
    port: int
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self, chars: int = 800) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class Stack:
    database_url: str
    redis_url: str
    workers: int
    workdir: Path
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, Process] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Every process knows every port up front (the gateway needs its upstreams).
        self.ports = {name: free_port() for name in (*APPS, "nginx")}

    def env(self, name: str) -> dict[str, str]:
        port = self.ports[name]
        url = lambda n: f"http://127.0.0.1:{self.ports[n]}"  # noqa: E731
        env = {
            **os.environ,
            "PORT": str(port),
            "BIND": f"127.0.0.1:{port}",
            "WEB_CONCURRENCY": str(self.workers),
            # Production recycles a worker every ~10,000 requests; at bench rates that is
            # every few seconds and shows up as connection resets, so it is off here.
            "MAX_REQUESTS": "0",
            "LOG_LEVEL": "warning",
            "ENVIRONMENT": "development",
            "SERVICE_NAME": f"bench-{name}",
            "PROMETHEUS_MULTIPROC_DIR": str(self.workdir / f"prom-{name}"),
            "DATABASE_URL": self.database_url,
            # 3 services x 2 workers x (5 + 5) stays under PostgreSQL's default 100
            # connections next to the test suite; 10 per worker is more than 2 cores use.
            "DB_POOL_SIZE": "5",
            "DB_MAX_OVERFLOW": "5",
            "REDIS_URL": self.redis_url,
            "JWKS_URL": f"{url('auth')}/.well-known/jwks.json",
            "CURSOR_SECRET": BENCH_SECRET,
            # The storm measures argon2 and its neighbours, not the per-IP limiter.
            "AUTH_RATE_LOGIN_IP": "1000000/minute",
            "AUTH_RATE_LOGIN_ACCOUNT": "1000000/minute",
            "AUTH_RATE_REGISTER_IP": "1000000/hour",
            "AUTH_ALLOW_UNVERIFIED_LOGIN": "true",
            # The gateway's limits are still counted in Redis (that cost is part of the
            # measured hop; the bench is one busy client, so in leased blocks) but never
            # refuse one: a 429 would be faster than the read it replaces.
            "GATEWAY_RATE_ANONYMOUS": "1000000000/minute",
            "GATEWAY_RATE_USER": "1000000000/minute",
            "GATEWAY_RATE_AUTH": "1000000000/minute",
            "PYTHONPATH": str(ROOT),
        }
        for upstream in ("auth", "users", "catalog"):
            # both spellings the gateway may read its upstreams from
            env[f"GATEWAY_{upstream.upper()}_URL"] = url(upstream)
            env[f"{upstream.upper()}_URL"] = url(upstream)
        return env

    def start(self, names: list[str]) -> None:
        """Start the apps that exist; wait until each answers /healthz or give up on it."""
        for name in names:
            spec = APPS[name]
            if not exists(spec.module):
                self.unavailable[name] = f"`{spec.module}` does not exist yet"
                continue
            log = self.workdir / f"{name}.log"
            popen = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), spec.factory],
                env=self.env(name),
                cwd=ROOT,
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self.processes[name] = Process(name, self.ports[name], popen, log)
        time.sleep(0.5)  # a worker that fails its startup takes its master down shortly after
        for name in list(self.processes):
            if not self._wait_healthy(self.processes[name]) or not self._still_up(name):
                proc = self.processes.pop(name)
                self.unavailable[name] = f"did not become healthy: {proc.tail(300)!r}"
                _stop(proc)

    def start_nginx(self, upstream: str = "catalog") -> None:
        """nginx in front of `upstream` (tools/bench/nginx.py), the reference proxy."""
        target = self.url(upstream)
        if target is None:
            self.unavailable["nginx"] = f"{upstream} is not running"
            return
        try:
            conf = nginx.config(
                self.workdir, port=self.ports["nginx"], upstream=target, workers=self.workers
            )
            nginx.check(conf)
            cmd = nginx.command(conf)
        except (OSError, subprocess.SubprocessError) as exc:
            self.unavailable["nginx"] = f"{type(exc).__name__}: {exc}"
            return
        log = self.workdir / "nginx.log"
        popen = subprocess.Popen(
            cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
        )
        proc = self.processes["nginx"] = Process("nginx", self.ports["nginx"], popen, log)
        if not self._wait_healthy(proc, timeout=15):
            self.unavailable["nginx"] = f"did not answer: {proc.tail(300)!r}"
            _stop(self.processes.pop("nginx"))

    def _still_up(self, name: str) -> bool:
        time.sleep(0.3)
        return self.processes[name].popen.poll() is None

    def create_admin(self) -> str:
        """The admin of the write scenarios, made with auth's own management command
        (not AUTH_BOOTSTRAP_*: two workers racing to create it crash one of them)."""
        env = self.env("auth")
        env.pop("PROMETHEUS_MULTIPROC_DIR")  # a one-off command keeps its metrics in memory
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "services.auth.manage",
                "create-admin",
                "--email",
                ADMIN_EMAIL,
                "--password-stdin",
            ],
            input=ADMIN_PASSWORD + "\n",
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        return (done.stdout + done.stderr).strip()[-200:]

    def _wait_healthy(self, proc: Process, timeout: float = 45.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{proc.url}/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.2)
        return False

    def url(self, name: str) -> str | None:
        proc = self.processes.get(name)
        return proc.url if proc else None

    def pids(self, name: str) -> list[int]:
        """The gunicorn master and its workers (for the profiler)."""
        proc = self.processes[name]
        out = subprocess.run(
            ["pgrep", "-P", str(proc.popen.pid)], capture_output=True, text=True, check=False
        ).stdout
        return [proc.popen.pid, *(int(p) for p in out.split())]

    def stop(self) -> None:
        for proc in self.processes.values():
            _stop(proc)
        self.processes.clear()
        if os.environ.get("BENCH_KEEP_LOGS"):  # to read the processes' logs after a run
            print(f"bench stack logs kept in {self.workdir}")
            return
        shutil.rmtree(self.workdir, ignore_errors=True)


def _stop(proc: Process) -> None:
    if proc.popen.poll() is None:
        os.killpg(proc.popen.pid, signal.SIGTERM)
        try:
            proc.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.popen.pid, signal.SIGKILL)
            proc.popen.wait(timeout=5)


def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="shopstack-bench-"))


async def _product_count(url: str) -> int:
    conn = await asyncpg.connect(_dsn(url))
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM catalog.products")
        return count
    except asyncpg.PostgresError:
        return -1
    finally:
        await conn.close()


def prepare_database(admin_url: str, name: str, products: int, *, reuse: bool) -> tuple[str, str]:
    """Migrated and seeded scratch database; returns its URL and what was done."""
    url = with_database(admin_url, name)
    if reuse:
        try:
            if asyncio.run(_product_count(url)) >= products:
                upgrade_all(url, names=_migrated_services())
                return url, "reused"
        except (OSError, asyncpg.PostgresError):
            pass
    asyncio.run(recreate_database(admin_url, name))
    upgrade_all(url, names=_migrated_services())
    seconds = asyncio.run(catalog_seed.seed(url, products, reset=True))
    return url, f"seeded {products:,} products in {seconds:.1f} s"


def _migrated_services() -> list[str]:
    return [n for n in environments() if (ROOT / "services" / n / "models.py").exists()]
