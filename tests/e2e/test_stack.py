"""The whole stack as real processes: a user registers, gets the verification email
through the outbox, the worker and SMTP, verifies, logs in and reads the profile the
users service built from the `user.registered` event; then a service is killed and
comes back."""

from __future__ import annotations

import re
import signal
import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from tests.e2e.conftest import Stack
from tools.devstack.smtp_sink import body_text

pytestmark = pytest.mark.e2e

PASSWORD = "e2e-Correct-horse-battery-9"
NEEDED = {"auth", "users", "worker"}


def entry(stack: Stack, service: str) -> str:
    """Through the gateway once it exists (it routes by path), else straight to the service."""
    return stack.gateway_url if "gateway" in stack.names else stack.url(service)


def eventually(
    check: Callable[[], httpx.Response], status: int, timeout: float = 10.0
) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = check()
        if response.status_code == status or time.monotonic() >= deadline:
            return response
        time.sleep(0.1)


def test_every_process_is_ready(stack: Stack) -> None:
    assert NEEDED <= set(stack.names), stack.names
    for name in stack.names:
        response = httpx.get(f"{stack.config.url(name)}/readyz", timeout=5)
        assert response.status_code == 200, (name, response.text)
        assert set(response.json()["checks"].values()) == {"ok"}


def register_and_login(stack: Stack) -> tuple[str, str]:
    email = f"e2e-{uuid.uuid4().hex[:12]}@example.com"
    auth = entry(stack, "auth")
    registered = httpx.post(
        f"{auth}/api/v1/auth/register", json={"email": email, "password": PASSWORD}, timeout=10
    )
    assert registered.status_code == 202, registered.text
    (mail,) = stack.wait_for_mail(email, timeout=15)
    match = re.search(r"/verify-email\?token=([\w.~%-]+)", body_text(mail))
    assert match, "no verification link in the email"
    verified = httpx.post(f"{auth}/api/v1/auth/verify-email", json={"token": match.group(1)})
    assert verified.status_code == 204, verified.text
    login = httpx.post(f"{auth}/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return email, login.json()["access_token"]


def test_register_verify_login_and_read_profile(stack: Stack) -> None:
    email, token = register_and_login(stack)
    users = entry(stack, "users")
    headers = {"Authorization": f"Bearer {token}"}
    me = eventually(lambda: httpx.get(f"{users}/api/v1/users/me", headers=headers), 200)
    assert me.status_code == 200, me.text
    assert me.json()["email"] == email
    # The token never reaches a log line of any process.
    for name in stack.names:
        assert token not in stack.log(name), f"{name} logged an access token"


def test_a_killed_service_comes_back(stack: Stack) -> None:
    _, token = register_and_login(stack)
    users = entry(stack, "users")
    headers = {"Authorization": f"Bearer {token}"}
    first = eventually(lambda: httpx.get(f"{users}/api/v1/users/me", headers=headers), 200)
    assert first.status_code == 200, first.text
    old = stack.processes.pid("users")
    stack.restart("users", signal.SIGKILL)
    assert stack.processes.pid("users") != old
    assert stack.processes.is_running("users")
    # The same token still works: nothing of it lived in the killed process.
    again = httpx.get(f"{stack.url('users')}/api/v1/users/me", headers=headers, timeout=5)
    assert again.status_code == 200, again.text
