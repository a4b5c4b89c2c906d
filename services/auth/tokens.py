"""Access tokens: the one module that calls the JWT library to sign (python-jose, RS256)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jose import jwk, jwt
from jose.backends.base import Key

ALGORITHM = "RS256"


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: str
    session_id: str
    role: str
    email_verified: bool


@lru_cache(maxsize=16)
def _key(private_pem: str) -> Key:
    """The parsed key, once per PEM: parsing an RSA private key validates it, tens of ms
    of CPU on the event loop (docs/performance.md, "Login"). A handful of keys exist at a
    time (rotation)."""
    return jwk.construct(private_pem, ALGORITHM)


def public_jwk(private_pem: str, kid: str) -> dict[str, Any]:
    public: dict[str, Any] = _key(private_pem).public_key().to_dict()
    return {**public, "kid": kid, "use": "sig", "alg": ALGORITHM}


def sign_access_token(
    claims: AccessClaims,
    *,
    kid: str,
    private_pem: str,
    issuer: str,
    audience: str,
    ttl_seconds: int,
    now: float | None = None,
) -> str:
    # iat keeps milliseconds: revocation ("tokens issued up to T") compares against it.
    issued_at = round(now if now is not None else time.time(), 3)
    payload = {
        "iss": issuer,
        "aud": audience,
        "sub": claims.user_id,
        "iat": issued_at,
        "nbf": int(issued_at),
        "exp": int(issued_at + ttl_seconds),
        "jti": uuid.uuid4().hex,
        "sid": claims.session_id,
        "role": claims.role,
        "email_verified": claims.email_verified,
    }
    token: str = jwt.encode(payload, _key(private_pem), algorithm=ALGORITHM, headers={"kid": kid})
    return token
