"""Swagger UI in a real headless Chromium (Debian's package, driven by playwright-core
from clients/), offline: every request that would leave loopback is refused and
recorded, and there must be none. The page must render the operations of all three
services with no error (a CSP refusal is one), and its screenshot goes to
docs/swagger-ui.png."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.clients_support import generated_clients
from tests.e2e.conftest import Stack
from tools.devstack.stack import ROOT

__all__ = ["generated_clients"]
pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCREENSHOT = ROOT / "docs" / "swagger-ui.png"


def test_swagger_ui_renders_every_service_offline(stack: Stack, generated_clients: Path) -> None:
    assert shutil.which(CHROMIUM), "Debian's chromium (deploy/tools/install-tools.sh installs it)"
    done = subprocess.run(
        ["node", "tests/docs-browser.mjs"],
        cwd=generated_clients,
        env={
            **os.environ,
            "DOCS_URL": f"{stack.gateway_url}/docs",
            "SCREENSHOT": str(SCREENSHOT),
            "CHROMIUM": CHROMIUM,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    page = json.loads(done.stdout.strip().splitlines()[-1])
    assert page["status"] == 200
    assert page["refused"] == [], "the docs page asked the internet for something"
    local = f"{stack.gateway_url}/"
    assert page["requests"] and all(url.startswith(local) for url in page["requests"])
    assert page["problems"] == [], page["problems"]  # script errors, CSP refusals
    assert "script-src 'self';" in page["csp"] and "http" not in page["csp"]
    assert page["title"].startswith("shopstack API")
    assert page["tags"][:3] == ["auth", "users", "catalog"]
    rendered = set(page["operationIds"])
    for operation in ("auth.login", "auth.register", "users.getMe", "catalog.listProducts"):
        assert operation in rendered
    assert {op.split(".")[0] for op in rendered} >= {"auth", "users", "catalog"}
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
