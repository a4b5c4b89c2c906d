"""Demo data for `make run`, development only: a browsable catalog (the catalog's own
seed: categories and products) and a demo admin.

The admin's password is random, made once per data folder and kept there
(<data>/demo-admin.json, mode 0600, like the rest of .data never committed), so every
`make run` on the same folder prints the same credentials. Both steps refuse any
environment but development: a production stack never gets a known account or
made-up products.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tools.devstack.stack import ROOT, StackConfig, common_env

log = logging.getLogger("devstack")
ADMIN_EMAIL = "admin@example.com"
ADMIN_FILE = "demo-admin.json"


class DemoRefused(RuntimeError):
    """Demo data asked for outside development."""


@dataclass(frozen=True)
class DemoAdmin:
    email: str
    password: str | None  # None: the account existed before this data folder knew it
    created: bool


def refuse_outside_development(environment: str) -> None:
    if environment != "development":
        raise DemoRefused(
            f"demo data (seeded catalog, demo admin) is for development only, "
            f"not ENVIRONMENT={environment}"
        )


def run_module(
    config: StackConfig, service: str, args: list[str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m <args...>` (an operator command or a tool) with the environment the
    service itself gets (database, secrets, its own settings)."""
    env = {**os.environ, **common_env(config, service)}
    env.pop("PROMETHEUS_MULTIPROC_DIR")  # a one-off command keeps its metrics in memory
    return subprocess.run(  # noqa: S603 - our own module, our own arguments
        [sys.executable, "-m", *args],
        env=env,
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


def seed_catalog(config: StackConfig, products: int) -> None:
    """Categories and `products` products (tools.devstack.seed; idempotent)."""
    refuse_outside_development(config.environment)
    log.info("seeding demo categories and %d products", products)
    done = run_module(config, "catalog", ["tools.devstack.seed", "--products", str(products)])
    if done.returncode != 0:
        raise RuntimeError(f"seeding the catalog failed:\n{done.stderr[-2000:]}")


def ensure_admin(config: StackConfig) -> DemoAdmin:
    """The demo admin of this data folder: created with a new random password the first
    time, then the same account and password on every start."""
    refuse_outside_development(config.environment)
    path = config.data_dir / ADMIN_FILE
    known = _read(path)
    password = known or secrets.token_urlsafe(18)
    done = run_module(
        config,
        "auth",
        ["services.auth.manage", "create-admin", "--email", ADMIN_EMAIL, "--password-stdin"],
        stdin=password + "\n",
    )
    if done.returncode == 0:
        if known is None:
            _write(path, password)
        return DemoAdmin(ADMIN_EMAIL, password, created=True)
    if "already exists" in done.stderr:
        # The database outlived the data folder (DATABASE_URL set): its password is not ours.
        return DemoAdmin(ADMIN_EMAIL, known, created=False)
    raise RuntimeError(f"creating the demo admin failed: {done.stderr.strip()[-2000:]}")


def _read(path: Path) -> str | None:
    try:
        value = json.loads(path.read_text())["password"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, str) and value else None


def _write(path: Path, password: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"email": ADMIN_EMAIL, "password": password}, out)
        out.write("\n")


def banner_lines(config: StackConfig, admin: DemoAdmin | None, products: int | None) -> list[str]:
    lines = []
    if products is not None and "gateway" in config.ports:
        lines.append(f"  catalog   {config.url('gateway')}/api/v1/catalog/products  (demo data)")
    if admin is not None:
        if admin.password is not None:
            kept = config.data_dir / ADMIN_FILE
            lines.append(f"  admin     {admin.email} / {admin.password}  (kept in {kept})")
        else:
            lines.append(
                f"  admin     {admin.email}  (older than this data folder: password unknown)"
            )
    return lines
