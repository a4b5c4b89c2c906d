"""Signing keys: JWKS, rotation, storage, and the JWT attacks that must all give 401."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time

import pytest
from jose import jwk, jwt
from sqlmodel import col, select

from services.auth.context import AuthContext
from services.auth.keys import ensure_key, rotate_key
from services.auth.models import SigningKey
from services.auth.settings import AuthSettings
from services.common.settings import DEV_SECRET
from services.common.state import provided
from tests.integration.auth.support import (
    auth_client,
    bearer,
    is_problem,
    login,
    settings,
    verified_user,
)
from tests.support import tokens as foreign

pytestmark = pytest.mark.usefixtures("infra")
ME = "/api/v1/auth/sessions"


async def test_jwks_is_served_on_both_paths() -> None:
    async with auth_client() as (_, client):
        root = await client.get("/.well-known/jwks.json")
        prefixed = await client.get("/api/v1/auth/.well-known/jwks.json")
        assert root.status_code == prefixed.status_code == 200
        assert root.json() == prefixed.json()
        keys = root.json()["keys"]
        assert keys and all(k["kty"] == "RSA" and k["alg"] == "RS256" and k["kid"] for k in keys)
        assert not any("d" in k or "p" in k for k in keys)  # no private parts
        assert "max-age" in root.headers["cache-control"]


async def test_private_keys_are_encrypted_at_rest() -> None:
    async with auth_client() as (app, _):
        async with app.state.session_factory() as session:
            rows = list(await session.exec(select(SigningKey)))
        assert rows
        for row in rows:
            assert "PRIVATE KEY" not in row.private_key_encrypted
            assert row.private_key_encrypted.startswith("gAAAA")  # Fernet token


async def test_rotation_keeps_old_tokens_valid_and_signs_with_the_new_key() -> None:
    async with auth_client() as (app, client):
        email, old = await verified_user(app, client)
        old_kid = jwt.get_unverified_header(old["access_token"])["kid"]
        new_kid = await rotate_key(app.state.session_factory, app.state.settings)
        provided(app, AuthContext).keys.invalidate()  # as when this worker's key cache expires
        fresh = await login(client, email)
        assert jwt.get_unverified_header(fresh["access_token"])["kid"] == new_kid != old_kid
        kids = {k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}
        assert {old_kid, new_kid} <= kids
        await asyncio.sleep(1.05)  # the verifier looks up an unknown kid at most once a second
        assert (await client.get(ME, headers=bearer(fresh["access_token"]))).status_code == 200
        assert (await client.get(ME, headers=bearer(old["access_token"]))).status_code == 200


async def test_retired_keys_leave_the_jwks_after_the_grace() -> None:
    async with auth_client() as (app, client):
        await rotate_key(app.state.session_factory, app.state.settings)
        async with app.state.session_factory() as session, session.begin():
            retired = list(
                await session.exec(
                    select(SigningKey).where(col(SigningKey.retired_at).is_not(None))
                )
            )
            long_ago = retired[0].retired_at - provided(app, AuthContext).keys.publish_grace * 2  # type: ignore[operator]
            for row in retired:
                row.retired_at = long_ago
                session.add(row)
        kids = {k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}
        assert not kids & {r.kid for r in retired}


async def test_first_key_is_created_once_under_concurrency() -> None:
    async with auth_client() as (app, _):
        factory = app.state.session_factory
        async with factory() as session, session.begin():
            for row in await session.exec(select(SigningKey)):
                await session.delete(row)
        created = await asyncio.gather(*(ensure_key(factory, app.state.settings) for _ in range(6)))
        assert created.count(True) == 1
        async with factory() as session:
            live = list(
                await session.exec(select(SigningKey).where(col(SigningKey.retired_at).is_(None)))
            )
        assert len(live) == 1


REAL = "4b1d0c9e8f7a6b5c4d3e2f1a0b9c8d7e" * 2  # shaped like deploy/gen-secrets.sh output


def test_production_refuses_the_dev_key_encryption_secret() -> None:
    with pytest.raises(ValueError, match="AUTH_KEY_ENCRYPTION_SECRET"):
        AuthSettings(
            environment="production",
            cursor_secret=REAL,
            email_link_secret=REAL,
            key_encryption_secret=DEV_SECRET,
        )
    ok = AuthSettings(
        environment="production",
        cursor_secret=REAL,
        email_link_secret=REAL,
        key_encryption_secret=REAL,
    )
    assert ok.key_encryption_secret == REAL
    assert settings().argon2_memory_kib == 1024
    assert AuthSettings().argon2_memory_kib == 19456  # the OWASP default stays


def _b64(data: dict[str, object] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def test_jwt_attacks_are_all_401() -> None:
    async with auth_client() as (app, client):
        _, good = await verified_user(app, client)
        token = good["access_token"]
        header = jwt.get_unverified_header(token)
        claims = jwt.get_unverified_claims(token)
        public = next(
            k
            for k in (await client.get("/.well-known/jwks.json")).json()["keys"]
            if k["kid"] == header["kid"]
        )
        public_pem = jwk.construct(public, "RS256").to_pem()
        key = await provided(app, AuthContext).keys.signing_key()

        def signed(**changes: object) -> str:
            return jwt.encode(
                claims | changes, key.private_pem, algorithm="RS256", headers={"kid": key.kid}
            )

        head, body, sig = token.split(".")
        attacks = {
            "alg none": f"{_b64({'alg': 'none', 'kid': header['kid']})}.{body}.",
            "hs256 with public pem": _hs256(claims, header["kid"], public_pem),
            "wrong aud": signed(aud="someone-else"),
            "wrong iss": signed(iss="https://evil.example"),
            "unknown kid": foreign.mint(claims["sub"], session_id=claims["sid"]),
            "tampered signature": f"{head}.{body}.{_flip(sig)}",
            "tampered claims": f"{head}.{_b64(claims | {'role': 'admin'})}.{sig}",
            "expired": signed(
                iat=round(time.time() - 3600, 3),
                nbf=int(time.time() - 3600),
                exp=int(time.time() - 600),
            ),
            "garbage": "not.a.jwt",
        }
        for name, forged in attacks.items():
            response = await client.get(ME, headers=bearer(forged))
            assert is_problem(response, 401), name
        assert (await client.get(ME, headers=bearer(token))).status_code == 200


def _flip(signature: str) -> str:
    """The same signature with its last characters changed."""
    tail = "AAAA" if signature[-4:] != "AAAA" else "BBBB"
    return signature[:-4] + tail


def _hs256(claims: dict[str, object], kid: str, secret: bytes) -> str:
    """HS256 signed with the RSA public key as the HMAC secret (algorithm confusion)."""
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{_b64(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"
