"""The generated clients against the live gateway (the e2e stack): `make clients`
writes them from the merged document, then

- the TypeScript client, compiled by tsc (so a type error fails too) and run under
  Node: register, verify from the mail the stack sent, log in, refresh, read
  /users/me, page through products with the cursor, a problem+json 404;
- the Python client: a wrong password and an unknown product come back as typed
  problems, a page of categories as a typed page.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
import threading
import uuid
from pathlib import Path

import pytest

from tests.e2e.clients_support import create_admin, generated_clients
from tests.e2e.conftest import Stack
from tools.devstack.smtp_sink import body_text

__all__ = ["generated_clients"]
pytestmark = pytest.mark.e2e

PASSWORD = "e2e-Typed-client-horse-7"
NODE_TIMEOUT = 120.0


def _tsc(clients: Path) -> None:
    done = subprocess.run(
        [str(clients / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.json"],
        cwd=clients,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"tsc:\n{done.stdout}{done.stderr}"


def test_the_typescript_client_drives_the_gateway(stack: Stack, generated_clients: Path) -> None:
    _tsc(generated_clients)
    admin = f"ts-admin-{uuid.uuid4().hex[:10]}@example.com"
    create_admin(stack, admin, PASSWORD)
    email = f"ts-user-{uuid.uuid4().hex[:10]}@example.com"
    env = {
        **os.environ,
        "GATEWAY_URL": stack.gateway_url,
        "USER_EMAIL": email,
        "USER_PASSWORD": PASSWORD,
        "ADMIN_EMAIL": admin,
        "ADMIN_PASSWORD": PASSWORD,
    }
    node = subprocess.Popen(
        ["node", "build/tests/flow.js"],
        cwd=generated_clients,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(NODE_TIMEOUT, node.kill)  # a hung script fails, bounded
    watchdog.start()
    try:
        assert node.stdout is not None and node.stdin is not None
        first = node.stdout.readline()
        assert first, f"the script ended before registering:\n{node.communicate()[1]}"
        assert json.loads(first) == {"step": "registered", "email": email}
        (mail,) = stack.wait_for_mail(email, timeout=20)
        match = re.search(r"/verify-email\?token=([\w.~%-]+)", body_text(mail))
        assert match, "no verification link in the email"
        node.stdin.write(match.group(1) + "\n")
        node.stdin.flush()
        out, err = node.communicate(timeout=NODE_TIMEOUT)
    finally:
        watchdog.cancel()
        if node.poll() is None:
            node.kill()
            node.wait()
    assert node.returncode == 0, f"node failed:\n{out}\n{err[-4000:]}"
    steps = [json.loads(line) for line in out.splitlines()]
    assert [s["step"] for s in steps] == [
        "verified",
        "logged in and refreshed",
        "read /users/me",
        "admin created products",
        "paged through products",
        "problem+json",
        "done",
    ]
    pages = next(s for s in steps if s["step"] == "paged through products")["pages"]
    assert pages == [3, 3, 1]


PYTHON_CLIENT = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys, uuid
    import shopstack_client.api
    from shopstack_client import Client
    from shopstack_client.api.auth import auth_login
    from shopstack_client.api.catalog import catalog_get_product, catalog_list_categories
    from shopstack_client.models import AuthLoginJsonLoginRequest, Problem

    # Every operation's module imports (a generator bug once left one broken).
    modules = [importlib.import_module(m.name) for m in
               pkgutil.walk_packages(shopstack_client.api.__path__, "shopstack_client.api.")]
    client = Client(base_url=sys.argv[1], raise_on_unexpected_status=True)
    wrong = auth_login.sync_detailed(
        client=client,
        body=AuthLoginJsonLoginRequest(email="nobody@example.com", password="not-the-password-1"),
    )
    missing = catalog_get_product.sync_detailed(client=client, product_id=uuid.uuid4())
    page = catalog_list_categories.sync(client=client, limit=1)
    print(json.dumps({
        "login": [wrong.status_code, type(wrong.parsed).__name__, wrong.parsed.status],
        "missing": [missing.status_code, isinstance(missing.parsed, Problem),
                    missing.parsed.type_],
        "page": type(page).__name__,
        "modules": len(modules),
    }))
    """
)


def test_the_python_client_reads_typed_answers(stack: Stack, generated_clients: Path) -> None:
    done = subprocess.run(
        [
            str(generated_clients / ".venv" / "bin" / "python"),
            "-c",
            PYTHON_CLIENT,
            stack.gateway_url,
        ],
        env={**os.environ, "PYTHONPATH": str(generated_clients / "python" / "shopstack-client")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout)
    assert result["login"] == [401, "Problem", 401]
    assert result["missing"][:2] == [404, True]
    assert result["missing"][2].startswith("https://errors.shopstack.dev/")
    assert result["page"] == "PageCategoryOut"
    assert result["modules"] >= 40  # one per operation, one per tag
