"""`make run` greets a frontend developer: a browsable demo catalog, a demo admin
whose credentials it prints (and keeps in the data folder), CORS for the local dev
servers' origins. None of it in production."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from gateway.settings import DEV_CORS_ORIGINS, GatewaySettings
from tests.support.infra import Infra
from tests.support.stack import fresh_database
from tools.devstack import demo
from tools.devstack.embedded import EmbeddedRedis, free_port
from tools.devstack.stack import DEFAULT_PORTS, ROOT, StackConfig

pytestmark = pytest.mark.e2e

PRODUCTS = 120
STARTUP = 120.0  # make's install check, migrations, seeding, argon2, every process


def _banner(out: Path, proc: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + STARTUP
    while time.monotonic() < deadline and proc.poll() is None:
        text = out.read_text(errors="replace")
        if "shopstack is running" in text and re.search(r"admin\s+\S+", text):
            return text
        time.sleep(0.3)
    raise AssertionError(f"no banner (exit {proc.poll()}):\n{out.read_text()[-4000:]}")


def test_make_run_seeds_a_catalog_and_prints_the_demo_admin(infra: Infra, tmp_path: Path) -> None:
    database_url = fresh_database(infra, "demo")
    redis = EmbeddedRedis(tmp_path / "redis")
    data = tmp_path / "data"
    ports = {name: free_port() for name in DEFAULT_PORTS}
    args = [f"--data-dir={data}", "--workers=1", "--quiet", f"--seed-products={PRODUCTS}"]
    args += [f"--{name}-port={port}" for name, port in ports.items()]
    args.append(f"--smtp-port={free_port()}")
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis.url}
    out = tmp_path / "make-run.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            ["make", "-s", "run", f"RUN_ARGS={' '.join(args)}"],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # one Ctrl-C for make and the stack, as in a terminal
        )
    try:
        text = _banner(out, proc)
        gateway = f"http://127.0.0.1:{ports['gateway']}"
        match = re.search(r"admin\s+(\S+@\S+) / (\S+)", text)
        assert match, text[-2000:]
        email, password = match.groups()
        assert f"{gateway}/api/v1/catalog/products" in text
        # The banner comes once the gateway sees every upstream healthy, not just running.
        assert httpx.get(f"{gateway}/readyz", timeout=10).status_code == 200

        # Browsable: products and categories, with a cursor to the next page.
        products = httpx.get(f"{gateway}/api/v1/catalog/products?limit=5", timeout=10)
        assert products.status_code == 200, products.text
        assert len(products.json()["items"]) == 5 and products.json()["next_cursor"]
        assert 'rel="next"' in products.headers["link"]
        categories = httpx.get(f"{gateway}/api/v1/catalog/categories?limit=5", timeout=10)
        assert categories.status_code == 200 and categories.json()["items"]

        # The printed admin signs in and is an admin (the user directory is theirs).
        login = httpx.post(
            f"{gateway}/api/v1/auth/login", json={"email": email, "password": password}, timeout=30
        )
        assert login.status_code == 200, login.text
        bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
        directory = httpx.get(f"{gateway}/api/v1/users", headers=bearer, timeout=10)
        assert directory.status_code == 200, directory.text
        kept = data / demo.ADMIN_FILE
        assert json.loads(kept.read_text())["password"] == password
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600

        # A front end on Vite's dev server may call; an unknown origin may not.
        preflight = {"Access-Control-Request-Method": "POST"}
        vite = httpx.options(
            f"{gateway}/api/v1/auth/login",
            headers={**preflight, "Origin": "http://localhost:5173"},
            timeout=10,
        )
        assert vite.headers.get("access-control-allow-origin") == "http://localhost:5173"
        other = httpx.options(
            f"{gateway}/api/v1/auth/login",
            headers={**preflight, "Origin": "https://evil.example"},
            timeout=10,
        )
        assert "access-control-allow-origin" not in other.headers
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=45)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        redis.stop()
    # make itself dies of the Ctrl-C after its child, the stack, stopped cleanly.
    assert proc.returncode in (0, -signal.SIGINT), out.read_text()[-3000:]
    assert "devstack| stopped" in out.read_text()


def test_development_defaults_allow_the_local_dev_origins() -> None:
    assert GatewaySettings(environment="development").cors_origins == DEV_CORS_ORIGINS
    assert "http://localhost:5173" in DEV_CORS_ORIGINS
    assert "http://127.0.0.1:3000" in DEV_CORS_ORIGINS
    # Set explicitly (even to nothing), GATEWAY_CORS_ORIGINS wins.
    assert GatewaySettings(environment="development", cors_origins=[]).cors_origins == []
    assert GatewaySettings(environment="test").cors_origins == []


def test_production_refuses_the_development_defaults(tmp_path: Path) -> None:
    production = {"environment": "production", "cursor_secret": secrets.token_hex(32)}
    assert GatewaySettings(**production).cors_origins == []
    for origin in ("http://localhost:5173", "http://127.0.0.1:3000", "http://[::1]:5173"):
        with pytest.raises(ValidationError, match="no local origin in production"):
            GatewaySettings(**production, cors_origins=["https://shop.example", origin])
    assert GatewaySettings(**production, cors_origins=["https://shop.example"]).cors_origins
    # No demo data either: refused before anything is touched (this URL leads nowhere).
    config = StackConfig(
        database_url="postgresql://nobody@127.0.0.1:1/none",
        redis_url="redis://127.0.0.1:1/0",
        data_dir=tmp_path,
        environment="production",
    )
    with pytest.raises(demo.DemoRefused, match="development only"):
        demo.seed_catalog(config, 10)
    with pytest.raises(demo.DemoRefused, match="development only"):
        demo.ensure_admin(config)
    assert not (tmp_path / demo.ADMIN_FILE).exists()
