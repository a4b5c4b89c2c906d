"""Access tokens: the one module that calls the JWT library to sign (python-jose, RS256)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from jose import jwk, jwt

ALGORITHM = "RS256"


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: str
    session_id: str
    role: str
    email_verified: bool


def public_jwk(private_pem: str, kid: str) -> dict[str, Any]:
    public: dict[str, Any] = jwk.construct(private_pem, ALGORITHM).public_key().to_dict()
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
    token: str = jwt.encode(payload, private_pem, algorithm=ALGORITHM, headers={"kid": kid})
    return token
