"""What the client and browser tests share: `make clients` (the real command: npm ci
from clients/package-lock.json, both generators) once per session, and Node."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.stack import Stack
from tools.devstack.demo import run_module
from tools.devstack.stack import ROOT

CLIENTS = ROOT / "clients"
MAKE_TIMEOUT = 240  # npm ci (from its cache when warm), a venv for the Python generator


@pytest.fixture(scope="session")
def generated_clients() -> Path:
    """clients/ after `make clients`: node_modules, both generated clients."""
    for tool in ("make", "node", "npm"):
        assert shutil.which(tool), f"{tool} is needed (node 20 and npm: see docs/clients.md)"
    done = subprocess.run(
        ["make", "-s", "clients"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=MAKE_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, (
        f"make clients failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    assert (CLIENTS / "typescript" / "src" / "schema.d.ts").is_file()
    assert (CLIENTS / "python" / "shopstack-client" / "shopstack_client" / "client.py").is_file()
    return CLIENTS


def create_admin(stack: Stack, email: str, password: str) -> None:
    """An admin account in the stack's database, by the operator command."""
    done = run_module(
        stack.config,
        "auth",
        ["services.auth.manage", "create-admin", "--email", email, "--password-stdin"],
        stdin=password + "\n",
    )
    assert done.returncode == 0, done.stderr
