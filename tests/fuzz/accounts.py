"""Signed-in accounts for the fuzz run, and which token each example gets.

Destructive operations are fuzzed like every other: an example that may end the
caller's session or account gets credentials that are allowed to die, so the examples
after it still run signed in.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from types import TracebackType

import httpx
from schemathesis import Case
from sqlalchemy.ext.asyncio import create_async_engine

from services.auth.admin import create_admin
from services.auth.passwords import PasswordHasher
from services.common.db import asyncpg_url, session_factory
from tests.support.polling import until_status
from tests.support.stack import Stack
from tools.devstack.smtp_sink import body_text

PASSWORD = "Fuzz-Correct-horse-battery-9"
TIMEOUT = 15.0

# The account is deleted (anonymised): each example gets a brand-new account.
ACCOUNT_ENDING = frozenset({("DELETE", "/api/v1/users/me")})
# The caller's session, or every session of the account, ends (logout-all, and a
# password change that succeeds): each example logs in afresh, and the cached token
# is dropped so the next ordinary example logs in again too.
SESSION_ENDING = frozenset(
    {
        ("POST", "/api/v1/auth/logout"),
        ("POST", "/api/v1/auth/logout-all"),
        ("POST", "/api/v1/auth/password/change"),
        ("DELETE", "/api/v1/auth/sessions/{session_id}"),
    }
)


class Credentials:
    """One long-lived account per role, plus throwaway accounts for destructive examples."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.client = httpx.Client(base_url=stack.gateway_url, timeout=TIMEOUT)
        self.emails: dict[str, str] = {}
        self.tokens: dict[str, str] = {}
        self.throwaways = 0
        self._ready: set[str] = set()  # accounts whose profile the users service has

    def __enter__(self) -> Credentials:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.client.close()

    def for_case(self, case: Case, role: str) -> str:
        """A token for this example: one that may be spent if the example may spend it."""
        key = (case.method.upper(), case.path)
        if key in ACCOUNT_ENDING:
            self.throwaways += 1
            return self.login(self.new_account(role))
        if key in SESSION_ENDING:
            self.tokens.pop(role, None)
            return self.login(self.email(role))
        return self.token(role)

    def token(self, role: str) -> str:
        if role not in self.tokens:
            self.tokens[role] = self.login(self.email(role))
        return self.tokens[role]

    def email(self, role: str) -> str:
        if role not in self.emails:
            self.emails[role] = self.new_account(role)
        return self.emails[role]

    def login(self, email: str) -> str:
        response = self.client.post(
            "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
        )
        assert response.status_code == 200, f"login of {email}: {response.text}"
        token: str = response.json()["access_token"]
        if email not in self._ready:
            self._wait_for_profile(token)
            self._ready.add(email)
        return token

    def new_account(self, role: str) -> str:
        email = f"fuzz-{role}-{uuid.uuid4().hex[:12]}@example.com"
        if role == "admin":
            asyncio.run(self._create_admin(email))
        else:
            self._register_user(email)
        return email

    def _register_user(self, email: str) -> None:
        """Through the API, as a person would: register, open the email, verify."""
        registered = self.client.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert registered.status_code == 202, registered.text
        (mail,) = self.stack.wait_for_mail(email, timeout=15)
        match = re.search(r"/verify-email\?token=([\w.~%-]+)", body_text(mail))
        assert match, "no verification link in the email"
        verified = self.client.post("/api/v1/auth/verify-email", json={"token": match.group(1)})
        assert verified.status_code == 204, verified.text

    async def _create_admin(self, email: str) -> None:
        # No API makes an admin (by design): the operator command's own code does.
        engine = create_async_engine(asyncpg_url(self.stack.database_url))
        try:
            hasher = PasswordHasher(memory_kib=1024, time_cost=1, parallelism=1)
            await create_admin(session_factory(engine), hasher, email, PASSWORD)
        finally:
            await engine.dispose()

    def _wait_for_profile(self, token: str) -> None:
        """The users service builds the profile from `user.registered`: wait for it, or
        the first examples of /users/me meet an account that is still arriving."""
        headers = {"Authorization": f"Bearer {token}"}
        until_status(lambda: self.client.get("/api/v1/users/me", headers=headers), 200, timeout=15)
