"""The process list of the whole stack: every service that exists, each under gunicorn
(the worker under its own uvicorn runner), wired to one database, one Redis and one
SMTP server. Used by `python -m tools.devstack` and by the end-to-end tests.

Services are being added while the project grows, so what exists is checked when the
stack is built ("runs what exists"): a missing service is skipped with a log line.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from services import registry
from tools.devstack.processes import ProcessSpec

ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"

# The services behind the gateway, from the registry (services/registry.py).
SERVICES = registry.names(api_only=True)
# Start order: the gateway last, so its upstreams are usually up when it answers.
PROCESSES = (*registry.names(), "gateway")
DEFAULT_PORTS = {**{s.name: s.port for s in registry.SERVICES}, "gateway": registry.GATEWAY_PORT}
DEFAULT_SMTP_PORT = 1025

log = logging.getLogger("devstack")


@dataclass
class StackConfig:
    database_url: str
    redis_url: str
    data_dir: Path
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    smtp_host: str = "127.0.0.1"
    smtp_port: int = DEFAULT_SMTP_PORT
    # WEB_CONCURRENCY per process name; others get default_concurrency.
    concurrency: dict[str, int] = field(default_factory=dict)
    default_concurrency: int = 2
    environment: str = "development"
    app_url: str = "http://localhost:3000"
    jwt_issuer: str | None = None  # default: the auth service's own URL
    log_level: str = "INFO"
    # Short graceful timeouts: a developer's Ctrl-C should not wait half a minute.
    graceful_timeout: int = 5
    extra_env: dict[str, str] = field(default_factory=dict)
    only: Collection[str] | None = None  # a subset of PROCESSES (default: all that exist)
    root: Path = ROOT

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def issuer(self) -> str:
        return self.jwt_issuer or self.url("auth")


def exists(name: str, root: Path = ROOT) -> bool:
    """Whether a process of the stack has been written yet."""
    if name == "gateway":
        return (root / "gateway" / "app.py").is_file()
    service = registry.BY_NAME[name]
    package = root / Path(*(service.module or service.factory or "").partition(":")[0].split("."))
    return package.with_suffix(".py").is_file() or (package / "__main__.py").is_file()


def available(config: StackConfig) -> list[str]:
    wanted = [n for n in PROCESSES if config.only is None or n in config.only]
    present = []
    for name in wanted:
        if exists(name, config.root):
            present.append(name)
        else:
            log.info("skipping %s: not written yet (the stack runs what exists)", name)
    return present


def app_factory(name: str) -> str:
    factory = "gateway.app:create_app()" if name == "gateway" else registry.BY_NAME[name].factory
    assert factory is not None, f"{name} runs as a module, not under gunicorn"
    return factory


def metrics_dir(config: StackConfig, name: str) -> Path:
    return config.data_dir / "metrics" / name


def common_env(config: StackConfig, name: str) -> dict[str, str]:
    return {
        "SERVICE_NAME": name,
        "ENVIRONMENT": config.environment,
        "LOG_LEVEL": config.log_level,
        "DATABASE_URL": config.database_url,
        "REDIS_URL": config.redis_url,
        "JWKS_URL": f"{config.url('auth')}/.well-known/jwks.json",
        "JWT_ISSUER": config.issuer,
        "APP_URL": config.app_url,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir(config, name)),
        "GRACEFUL_TIMEOUT": str(config.graceful_timeout),
        "PYTHONUNBUFFERED": "1",
        **config.extra_env,
    }


def process_spec(config: StackConfig, name: str) -> ProcessSpec:
    port = config.ports[name]
    env = common_env(config, name)
    module = registry.BY_NAME[name].module if name in registry.BY_NAME else None
    if module is not None:  # the worker: its own uvicorn runner
        env.update(
            WORKER_HOST="127.0.0.1",
            WORKER_PORT=str(port),
            SMTP_HOST=config.smtp_host,
            SMTP_PORT=str(config.smtp_port),
            WORKER_SHUTDOWN_GRACE_SECONDS=str(config.graceful_timeout),
        )
        env.update(config.extra_env)
        argv = [sys.executable, "-m", module]
    else:
        env.update(
            PORT=str(port),
            BIND=f"127.0.0.1:{port}",
            WEB_CONCURRENCY=str(config.concurrency.get(name, config.default_concurrency)),
        )
        if name == "gateway":
            env.update({s.env_url: config.url(s.name) for s in registry.API_SERVICES})
        env.update(config.extra_env)
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(GUNICORN_CONF),
            app_factory(name),
        ]
    return ProcessSpec(
        name=name,
        argv=argv,
        env=env,
        port=port,
        cwd=config.root,
        fresh_dirs=(metrics_dir(config, name),),
        health_path=_health_path(config, name),
    )


def _health_path(config: StackConfig, name: str) -> str:
    """The gateway is up when it sees every upstream healthy (/readyz: the banner must not
    come before the API answers); with some services left out (--only) it never would."""
    if name != "gateway":
        return "/healthz"
    running = available(config)
    return "/readyz" if all(s.name in running for s in registry.API_SERVICES) else "/healthz"


def build_specs(config: StackConfig) -> list[ProcessSpec]:
    return [process_spec(config, name) for name in available(config)]
