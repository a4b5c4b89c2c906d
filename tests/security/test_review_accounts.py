"""Issue 18 review findings on accounts and tokens: each test performs the attack (or
causes the fault) and asserts it now fails. docs/security.md lists them."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwt
from sqlmodel import select

from services.auth.context import AuthContext
from services.auth.keys import KEY_ENCRYPTION_PURPOSE, ensure_key
from services.auth.models import Session
from services.auth.settings import AuthSettings
from services.common.redis import create_redis
from services.common.sealing import derive_key
from services.common.settings import DEV_SECRET
from services.common.state import provided
from services.users.app import create_app as users_app
from services.users.settings import UsersSettings
from tests.integration.auth.support import (
    PASSWORD,
    auth_client,
    bearer,
    emails,
    login,
    new_email,
    register,
    token_from,
    verified_user,
)
from tests.integration.auth.test_manage import manage
from tests.support.asgi import running

pytestmark = pytest.mark.usefixtures("infra")

AUTH = "/api/v1/auth"
USERS = "/api/v1/users"


def closed_port() -> int:
    """A local port nobody listens on: connections to it are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


def role_of(tokens: dict[str, Any]) -> str:
    return str(jwt.get_unverified_claims(tokens["access_token"])["role"])


# ---- refresh reuse is recorded before Redis is told ---------------------------------------


async def test_refresh_reuse_revokes_the_family_even_when_redis_is_down() -> None:
    async with auth_client() as (app, client):
        _, tokens = await verified_user(app, client)
        stolen = tokens["refresh_token"]
        rotated = await client.post(f"{AUTH}/refresh", json={"refresh_token": stolen})
        assert rotated.status_code == 200
        ctx = provided(app, AuthContext)
        healthy, ctx.redis = ctx.redis, create_redis(f"redis://127.0.0.1:{closed_port()}/0", 0.5)
        try:
            replay = await client.post(f"{AUTH}/refresh", json={"refresh_token": stolen})
        finally:
            await ctx.redis.aclose()
            ctx.redis = healthy
        assert replay.status_code in (401, 503), replay.text
        # The reuse is on record: the family is revoked in the database...
        async with app.state.session_factory() as session:
            sid = jwt.get_unverified_claims(tokens["access_token"])["sid"]
            row = (await session.exec(select(Session).where(Session.id == uuid.UUID(sid)))).one()
        assert row.revoked_at is not None and row.revoke_reason == "reuse"
        # ...so the thief's (or the owner's) rotated token is dead too.
        later = await client.post(
            f"{AUTH}/refresh", json={"refresh_token": rotated.json()["refresh_token"]}
        )
        assert later.status_code == 401
        # Once Redis is back, the replay also kills the session's access tokens.
        again = await client.post(f"{AUTH}/refresh", json={"refresh_token": stolen})
        assert again.status_code == 401
        assert (
            await client.get(f"{AUTH}/sessions", headers=bearer(tokens["access_token"]))
        ).status_code == 401


# ---- a CLI-promoted admin can be demoted ------------------------------------------------


async def test_cli_promotion_reaches_users_and_a_demotion_takes_effect() -> None:
    async with AsyncExitStack() as stack:
        _, auth_http = await stack.enter_async_context(auth_client(background_tasks=True))

        async def auth_jwks() -> dict[str, Any]:
            body: dict[str, Any] = (await auth_http.get("/.well-known/jwks.json")).json()
            return body

        users = users_app(
            UsersSettings(background_tasks=True),
            jwks_fetcher=auth_jwks,
        )
        users_http: httpx.AsyncClient = await stack.enter_async_context(running(users))

        target = new_email()
        await register(auth_http, target)
        admin = new_email()
        created = await manage(
            "create-admin", "--email", admin, "--password-stdin", stdin=PASSWORD + "\n"
        )
        assert created.returncode == 0, created.stderr
        target_tokens = await login(auth_http, target)
        target_id = jwt.get_unverified_claims(target_tokens["access_token"])["sub"]

        promoted = await manage("promote", "--email", target)
        assert promoted.returncode == 0, promoted.stderr
        admin_headers = bearer((await login(auth_http, admin))["access_token"])

        async def users_sees(role: str) -> bool:
            r = await users_http.get(f"{USERS}/{target_id}", headers=admin_headers)
            return r.status_code == 200 and r.json()["role"] == role

        # The users service learns of the CLI promotion (it used to keep "user").
        await eventually(lambda: users_sees("admin"))
        listed = await users_http.get(
            f"{USERS}?role=admin&limit=100&q={target}", headers=admin_headers
        )
        assert target_id in {item["id"] for item in listed.json()["items"]}

        promoted_tokens = await login(auth_http, target)
        assert role_of(promoted_tokens) == "admin"
        current = await users_http.get(f"{USERS}/{target_id}", headers=admin_headers)
        demoted = await users_http.patch(
            f"{USERS}/{target_id}",
            json={"role": "user"},
            headers={**admin_headers, "If-Match": current.headers["etag"]},
        )
        assert demoted.status_code == 200 and demoted.json()["role"] == "user", demoted.text
        # The demotion revokes the admin tokens at once...
        me = await users_http.get(f"{USERS}/me", headers=bearer(promoted_tokens["access_token"]))
        assert me.status_code == 401
        # ...and auth applies it: the next token says "user".

        async def auth_says_user() -> bool:
            return role_of(await login(auth_http, target)) == "user"

        await eventually(auth_says_user)


# ---- /password/change is not an unlimited oracle ----------------------------------------


async def test_password_change_guessing_with_a_stolen_token_is_bounded() -> None:
    async with auth_client(lockout_threshold=5) as (app, client):
        _, tokens = await verified_user(app, client)
        stolen = bearer(tokens["access_token"])
        codes = []
        for n in range(20):
            r = await client.post(
                f"{AUTH}/password/change",
                json={"current_password": f"guess number {n}", "new_password": "x" * 20 + "new"},
                headers=stolen,
            )
            codes.append(r.status_code)
        assert codes.count(400) <= 5, codes  # wrong guesses actually checked
        assert codes[-1] == 429
        # The right guess no longer tells the thief anything either.
        right = await client.post(
            f"{AUTH}/password/change",
            json={"current_password": PASSWORD, "new_password": "another long passphrase 42"},
            headers=stolen,
        )
        assert right.status_code == 429 and "retry-after" in right.headers
        # The owner's login is not the thing locked.
        await login(client, await _email_of(app, tokens))


async def _email_of(app: Any, tokens: dict[str, Any]) -> str:
    from services.auth.models import Account

    async with app.state.session_factory() as session:
        sub = uuid.UUID(jwt.get_unverified_claims(tokens["access_token"])["sub"])
        account = await session.get(Account, sub)
        assert account is not None
        return account.email


# ---- email squatting: unverified sessions do not survive the owner's verification --------


async def test_squatters_sessions_die_when_the_owner_verifies() -> None:
    async with auth_client() as (app, client):
        victim = new_email()
        await register(client, victim)  # the squatter registers the victim's address
        squatter = await login(client, victim)
        assert jwt.get_unverified_claims(squatter["access_token"])["email_verified"] is False
        # The real owner receives the link and verifies.
        [mail] = await emails(app, victim, "verify_email")
        verified = await client.post(f"{AUTH}/verify-email", json={"token": token_from(mail)})
        assert verified.status_code == 204
        refreshed = await client.post(
            f"{AUTH}/refresh", json={"refresh_token": squatter["refresh_token"]}
        )
        assert refreshed.status_code == 401
        listed = await client.get(f"{AUTH}/sessions", headers=bearer(squatter["access_token"]))
        assert listed.status_code == 401
        # The owner then resets the password (the squatter chose it): every session dies
        # again and the squatter's password stops working.
        await client.post(f"{AUTH}/password/forgot", json={"email": victim})
        reset_mail = (await emails(app, victim, "reset_password"))[-1]
        reset = await client.post(
            f"{AUTH}/password/reset",
            json={"token": token_from(reset_mail), "new_password": "owner's own long passphrase"},
        )
        assert reset.status_code == 204
        again = await client.post(f"{AUTH}/login", json={"email": victim, "password": PASSWORD})
        assert again.status_code == 401


# ---- production refuses known and weak secrets; keys at rest use a real KDF --------------

ROOT = Path(__file__).resolve().parents[2]
SECRET_LINE = re.compile(r"^\s*-?\s*([A-Za-z0-9_-]*(?:SECRET|secret))[=:]\s*\"?([^\"\s#]+)")


def published_dev_secrets() -> set[str]:
    """Every *SECRET value this repository ships for development."""
    files = [ROOT / ".env.example", ROOT / "deploy/k8s/overlays/dev/kustomization.yaml"]
    found = set()
    for path in files:
        for line in path.read_text().splitlines():
            match = SECRET_LINE.match(line)
            if match and not match.group(2).startswith("$"):
                found.add(match.group(2))
    assert len(found) >= 2, found  # the parser still reads those files
    return found


STRONG = "9f8e7d6c5b4a39281706f5e4d3c2b1a0" * 2


@pytest.mark.parametrize(
    "value",
    sorted(
        published_dev_secrets()
        | {DEV_SECRET, "x", "changethis", "a" * 64, "ab" * 32, "short-but-random-9f8e7d"}
    ),
)
def test_production_refuses_published_and_weak_secrets(value: str) -> None:
    for field in ("cursor_secret", "key_encryption_secret", "email_link_secret"):
        fields = {
            "cursor_secret": STRONG,
            "key_encryption_secret": STRONG,
            "email_link_secret": STRONG,
            field: value,
        }
        with pytest.raises(ValueError, match="production") as refused:
            AuthSettings(environment="production", **fields)
        assert value not in str(refused.value) or len(value) < 3  # never echoes the secret
        assert STRONG not in str(refused.value)


def test_production_accepts_a_generated_secret() -> None:
    generated = secrets.token_hex(32)  # what deploy/gen-secrets.sh writes
    ok = AuthSettings(
        environment="production",
        cursor_secret=generated,
        key_encryption_secret=secrets.token_hex(32),
        email_link_secret=secrets.token_hex(32),
    )
    assert ok.cursor_secret == generated
    assert AuthSettings(environment="test", cursor_secret="x").cursor_secret == "x"


async def test_signing_keys_use_hkdf_and_legacy_keys_are_reencrypted() -> None:
    from services.auth.models import SigningKey
    from services.auth.tokens import public_jwk

    async with auth_client() as (app, client):
        settings = provided(app, AuthContext).settings
        secret = settings.key_encryption_secret
        legacy = Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()))
        # A key written the old way (one SHA-256 of the secret), newest and live.
        pem = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            .private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            .decode()
        )
        kid = f"legacy-{uuid.uuid4().hex[:8]}"
        moment = datetime.now(UTC)
        async with app.state.session_factory() as session, session.begin():
            session.add(
                SigningKey(
                    kid=kid,
                    private_key_encrypted=legacy.encrypt(pem.encode()).decode(),
                    public_jwk=public_jwk(pem, kid),
                    created_at=moment,
                    activates_at=moment,
                )
            )
        try:
            # It still signs (the old encryption still decrypts)...
            provided(app, AuthContext).keys.invalidate()
            _, tokens = await verified_user(app, client)
            assert jwt.get_unverified_header(tokens["access_token"])["kid"] == kid
            # ...and the next start-up re-encrypts it with the HKDF-derived key.
            await ensure_key(app.state.session_factory, settings)
            async with app.state.session_factory() as session:
                row = await session.get(SigningKey, kid)
                assert row is not None
                stored = row.private_key_encrypted
            with pytest.raises(InvalidToken):
                legacy.decrypt(stored.encode())
            derived = derive_key(secret, KEY_ENCRYPTION_PURPOSE)
            assert derived != hashlib.sha256(secret.encode()).digest()
            assert Fernet(base64.urlsafe_b64encode(derived)).decrypt(stored).decode() == pem
        finally:
            async with app.state.session_factory() as session, session.begin():
                row = await session.get(SigningKey, kid)
                if row is not None:
                    row.retired_at = datetime.now(UTC) - timedelta(days=1)
                    session.add(row)
            provided(app, AuthContext).keys.invalidate()


# ---- lockout: an attacker who knows the email cannot keep the owner out -----------------

LOCKOUT = {"lockout_threshold": 5, "lockout_base_seconds": 600, "rate_login_account": "1000/minute"}


def from_ip(n: int) -> dict[str, str]:
    return {"x-forwarded-for": f"203.0.113.{n % 250 + 1}"}


async def test_owner_device_logs_in_while_an_attacker_locks_untrusted_clients() -> None:
    async with auth_client(**LOCKOUT) as (app, client):
        email, first = await verified_user(app, client)  # the owner, once, on their phone
        device = first["device_token"]
        assert device and client.cookies.get("device_token")  # body (apps) and cookie (browsers)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as attacker:
            # The attacker guesses from 60 addresses, and keeps going once locked out.
            codes = [
                (
                    await attacker.post(
                        f"{AUTH}/login",
                        json={"email": email, "password": f"guess {n}"},
                        headers=from_ip(n),
                    )
                ).status_code
                for n in range(60)
            ]
            # Online guessing across all addresses stays bounded: only the lockout
            # threshold's worth of guesses was ever checked.
            assert codes.count(401) <= LOCKOUT["lockout_threshold"], codes
            assert codes[-1] == 429
            # Even the right password from an untrusted client is refused now.
            right = await attacker.post(
                f"{AUTH}/login", json={"email": email, "password": PASSWORD}, headers=from_ip(99)
            )
            assert right.status_code == 429
            # A forged device token, or one issued for another account, is untrusted.
            _, other = await verified_user(app, attacker)
            for forged in (other["device_token"], device[:-4] + "AAAA", "x.1.y"):
                r = await attacker.post(
                    f"{AUTH}/login",
                    json={"email": email, "password": PASSWORD},
                    headers={"X-Device-Token": forged, **from_ip(98)},
                )
                assert r.status_code == 429, forged
        # The owner's browser (cookie) and app (header) still log in.
        assert (await login(client, email))["access_token"]
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as app_:
            r = await app_.post(
                f"{AUTH}/login",
                json={"email": email, "password": PASSWORD},
                headers={"X-Device-Token": device},
            )
            assert r.status_code == 200, r.text


async def test_a_stolen_device_token_is_locked_out_on_its_own() -> None:
    async with auth_client(**LOCKOUT) as (app, client):
        email, first = await verified_user(app, client)
        stolen = {"X-Device-Token": first["device_token"]}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as thief:
            codes = [
                (
                    await thief.post(
                        f"{AUTH}/login",
                        json={"email": email, "password": f"guess {n}"},
                        headers={**stolen, **from_ip(n)},
                    )
                ).status_code
                for n in range(30)
            ]
        assert codes.count(401) <= LOCKOUT["lockout_threshold"] and codes[-1] == 429, codes
        # That device's lockout is its own: an untrusted client (the owner on a new
        # laptop) is not locked by it.
        fresh = await client.post(
            f"{AUTH}/login",
            json={"email": email, "password": PASSWORD},
            headers={"X-Device-Token": "", "cookie": ""},
        )
        assert fresh.status_code == 200, fresh.text
