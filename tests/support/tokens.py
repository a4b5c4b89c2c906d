"""A test signing key and a token minter, for services tested without the auth service.

The key is a real RSA key and the tokens real RS256 JWTs, verified by the same code
path as production (JWKS -> services.common.jwt)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from functools import cache
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwk, jwt
from jose.backends.base import Key

TEST_KID = "test-key-1"
ISSUER = "http://auth:8001"
AUDIENCE = "shopstack"


@cache
def private_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@cache
def signing_key() -> Key:
    """The private key parsed once: parsing a PEM costs ~0.1 s (RSA key checks), which
    every mint() paid before."""
    return jwk.construct(private_pem().decode(), "RS256")


def public_jwk() -> dict[str, Any]:
    public = jwk.construct(private_pem(), "RS256").public_key().to_dict()
    return {**public, "kid": TEST_KID, "use": "sig", "alg": "RS256"}


def jwks() -> dict[str, Any]:
    return {"keys": [public_jwk()]}


async def jwks_fetcher() -> Mapping[str, Any]:
    return jwks()


def mint(
    user_id: str | None = None,
    *,
    role: str = "user",
    session_id: str | None = None,
    ttl: int = 900,
    issued_at: float | None = None,
    email_verified: bool = True,
    **overrides: Any,
) -> str:
    now = issued_at if issued_at is not None else round(time.time(), 3)
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": user_id or str(uuid.uuid4()),
        "iat": now,
        "nbf": int(now),
        "exp": int(now + ttl),
        "jti": uuid.uuid4().hex,
        "sid": session_id or uuid.uuid4().hex,
        "role": role,
        "email_verified": email_verified,
    }
    claims.update(overrides)
    return str(jwt.encode(claims, signing_key(), algorithm="RS256", headers={"kid": TEST_KID}))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
