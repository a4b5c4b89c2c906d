"""API2 broken authentication: the token attacks not already covered by
tests/integration/auth/test_keys_jwt.py (alg none, HS/RS confusion, wrong aud/iss,
expired, unknown kid, tampering) and tests/integration/gateway/test_edge_auth.py
(the same at the edge, not-yet-valid, revoked session and user).

Here: header tricks (no kid, kid injection, an embedded key, a key URL), algorithms
outside the allowlist signed with the real key, missing claims, tokens in the wrong
place, and a refresh token used as an access token."""

from __future__ import annotations

import base64
import json
import socket
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwk, jwt

from tests.integration.auth.support import auth_client, verified_user
from tests.security.support import clients, is_problem
from tests.support import tokens
from tests.support.tokens import bearer, mint

pytestmark = pytest.mark.usefixtures("infra")
ME = "/api/v1/users/me"


def _b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(**changes: Any) -> dict[str, Any]:
    return jwt.get_unverified_claims(mint(**changes))


def _signed(claims: dict[str, Any], headers: dict[str, Any], alg: str = "RS256") -> str:
    """Signed with the real test key (so only the header or claims are wrong)."""
    key = tokens.signing_key() if alg == "RS256" else tokens.private_pem().decode()
    return str(jwt.encode(claims, key, algorithm=alg, headers=headers))


def _attacker_key() -> tuple[str, dict[str, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = jwk.construct(pem, "RS256").public_key().to_dict()
    return pem, {**public, "kid": "attacker", "alg": "RS256", "use": "sig"}


def _without(claim: str) -> str:
    claims = _claims()
    del claims[claim]
    return _signed(claims, {"kid": tokens.TEST_KID})


async def test_header_tricks_and_foreign_keys_are_401() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    key_url = f"http://127.0.0.1:{listener.getsockname()[1]}/jwks.json"
    attacker_pem, attacker_jwk = _attacker_key()
    claims = _claims()
    body = _b64(claims)
    attacks = {
        "no kid": _signed(claims, {}),
        "kid null": _signed(claims, {"kid": None}),
        "kid path traversal": _signed(claims, {"kid": "../../../../dev/null"}),
        "kid sql": _signed(claims, {"kid": "x' OR '1'='1"}),
        "kid not a string": _signed(claims, {"kid": 1}),
        "embedded jwk (attacker key)": str(
            jwt.encode(
                claims,
                attacker_pem,
                algorithm="RS256",
                headers={"kid": "attacker", "jwk": attacker_jwk},
            )
        ),
        "embedded jwk, real kid": str(
            jwt.encode(
                claims,
                attacker_pem,
                algorithm="RS256",
                headers={"kid": tokens.TEST_KID, "jwk": attacker_jwk},
            )
        ),
        "jku to a key server": str(
            jwt.encode(
                claims, attacker_pem, algorithm="RS256", headers={"kid": "attacker", "jku": key_url}
            )
        ),
        "x5u to a key server": str(
            jwt.encode(
                claims, attacker_pem, algorithm="RS256", headers={"kid": "attacker", "x5u": key_url}
            )
        ),
        "RS512 with the real key": _signed(claims, {"kid": tokens.TEST_KID}, alg="RS512"),
        "PS256-labelled": f"{_b64({'alg': 'PS256', 'kid': tokens.TEST_KID})}.{body}.c2ln",
        "alg None": f"{_b64({'alg': 'None', 'kid': tokens.TEST_KID})}.{body}.",
        "alg NONE": f"{_b64({'alg': 'NONE', 'kid': tokens.TEST_KID})}.{body}.",
        "two segments": f"{_b64({'alg': 'RS256', 'kid': tokens.TEST_KID})}.{body}",
        "not yet valid": mint(nbf=int(time.time()) + 3600),
        "issued in the future, expired": mint(issued_at=time.time() + 7200, ttl=-3600),
        "no exp": _without("exp"),
        "no sub": _without("sub"),
        "no sid": _without("sid"),
        "no role": _without("role"),
        "no jti": _without("jti"),
        "no iat": _without("iat"),
        "no aud": _without("aud"),
        "no iss": _without("iss"),
        "aud list without ours": mint(aud=["other", "another"]),
        "huge token": "a" * 20_000,
    }
    async with clients("users") as apps:
        _, client = apps["users"]
        for name, token in attacks.items():
            response = await client.get(ME, headers=bearer(token))
            assert is_problem(response, 401), (name, response.status_code, response.text)
        assert (await client.get(ME, headers=bearer(mint()))).status_code == 200
    try:
        listener.accept()
        raise AssertionError("a token header made the service fetch a key")
    except BlockingIOError:
        pass  # no connection: key URLs in headers are never followed
    finally:
        listener.close()


async def test_tokens_only_count_in_the_authorization_header() -> None:
    token = mint()
    async with clients("users") as apps:
        _, client = apps["users"]
        tries = {
            "query string": await client.get(ME, params={"access_token": token}),
            "cookie": await client.get(ME, headers={"Cookie": f"access_token={token}"}),
            "other scheme": await client.get(ME, headers={"Authorization": f"Token {token}"}),
            "basic": await client.get(ME, headers={"Authorization": "Basic YTpi"}),
            "empty bearer": await client.get(ME, headers={"Authorization": "Bearer "}),
        }
    for name, response in tries.items():
        assert is_problem(response, 401), name


async def test_refresh_token_is_not_an_access_token_and_vice_versa() -> None:
    async with auth_client() as (app, client):
        _, pair = await verified_user(app, client)
        sessions = "/api/v1/auth/sessions"
        as_access = await client.get(sessions, headers=bearer(pair["refresh_token"]))
        as_refresh = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": pair["access_token"]}
        )
        assert is_problem(as_access, 401)
        # A JWT does not even fit the refresh-token format (422) or is unknown (401).
        assert is_problem(as_refresh, as_refresh.status_code)
        assert as_refresh.status_code in (401, 422)
        # Both still work for their own purpose (the failures above spent nothing).
        assert (await client.get(sessions, headers=bearer(pair["access_token"]))).status_code == 200
        renewed = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
        )
        assert renewed.status_code == 200
