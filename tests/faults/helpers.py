"""What the fault tests share: a slow SMTP sink, readiness waits, sign-ins, clients."""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.stack import Stack
from tools.devstack.smtp_sink import MaildirHandler, SmtpSink

PASSWORD = "faults-Correct-horse-battery-3"
ADMIN_EMAIL = "faults-admin@example.com"
ADMIN_PASSWORD = "faults-Admin-horse-battery-5"
PROBLEM = "application/problem+json"


class SlowHandler(MaildirHandler):
    """The maildir sink, holding its answer to DATA for `delay` seconds (a slow server)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.delay = 0.0
        self.data_started = 0  # DATA commands received (the message is on the server)
        self.started = threading.Event()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.data_started += 1
        self.started.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


class SlowSink(SmtpSink):
    def __init__(self, directory: Path, port: int, host: str = "127.0.0.1") -> None:
        super().__init__(directory, port, host)
        self.handler = SlowHandler(directory)
        self._controller = Controller(self.handler, hostname=host, port=port)


def client_ip() -> str:
    """A fresh client address (sent as X-Forwarded-For, which gunicorn trusts from
    127.0.0.1): load from many clients, so per-IP limits do not shape the tests."""
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def client(timeout: float = 20.0) -> httpx.Client:
    # trust_env=False: a proxy of the environment must never sit between us and loopback.
    return httpx.Client(timeout=timeout, trust_env=False)


def headers(token: str | None = None, ip: str | None = None) -> dict[str, str]:
    result = {"X-Forwarded-For": ip or client_ip()}
    if token:
        result["Authorization"] = f"Bearer {token}"
    return result


def eventually(check: Callable[[], bool], timeout: float = 30.0, pause: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return True
        except httpx.HTTPError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)


def wait_ready(stack: Stack, timeout: float = 45.0) -> None:
    """Every process answers /readyz with 200 (all its dependencies are back)."""
    with client(timeout=5) as http:
        for name in stack.names:
            url = f"{stack.config.url(name)}/readyz"
            ok = eventually(lambda u=url: http.get(u).status_code == 200, timeout)  # type: ignore[misc]
            assert ok, f"{name} not ready after {timeout}s: {stack.processes.log_tail(name)}"


def register(http: httpx.Client, gw: str, email: str | None = None) -> str:
    email = email or f"faults-{uuid.uuid4().hex[:12]}@example.com"
    done = http.post(
        f"{gw}/api/v1/auth/register",
        json={"email": email, "password": PASSWORD},
        headers=headers(),
    )
    assert done.status_code == 202, done.text
    return email


def login(http: httpx.Client, gw: str, email: str, password: str = PASSWORD) -> dict[str, Any]:
    done = http.post(
        f"{gw}/api/v1/auth/login",
        json={"email": email, "password": password},
        headers=headers(),
    )
    assert done.status_code == 200, done.text
    tokens: dict[str, Any] = done.json()
    return tokens


def admin_token(http: httpx.Client, gw: str) -> str:
    return str(login(http, gw, ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"])


def new_product(http: httpx.Client, gw: str, token: str, **fields: Any) -> dict[str, Any]:
    body = {
        "sku": f"F-{uuid.uuid4().hex[:10].upper()}",
        "name": "Fault-tolerant kettle",
        "price": "19.99",
        "currency": "EUR",
        "stock": 0,
        "status": "active",
        **fields,
    }
    done = http.post(f"{gw}/api/v1/catalog/products", json=body, headers=headers(token))
    assert done.status_code == 201, done.text
    product: dict[str, Any] = done.json()
    return product


def assert_unavailable(response: httpx.Response) -> None:
    """The promised outage answer: 503 problem+json that says when to try again."""
    assert response.status_code == 503, (response.status_code, response.text)
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["status"] == 503
