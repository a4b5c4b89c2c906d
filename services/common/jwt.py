"""Access-token verification, the one place that calls the JWT library to verify.

RS256 only (a fixed allowlist: `alg: none` and HS/RS confusion are refused before
any key is touched); keys come from the auth service's JWKS, cached and refreshed
on an unknown `kid` at most once per `min_refresh_interval`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from jose import JWTError, jwt

log = logging.getLogger("services.jwt")

ALGORITHMS = ["RS256"]
REQUIRED_CLAIMS = ("iss", "aud", "sub", "exp", "iat", "jti", "sid", "role")

JwksFetcher = Callable[[], Awaitable[Mapping[str, Any]]]


class KeysUnavailable(Exception):
    """The token's key is not known and the JWKS cannot be fetched now (the auth service or
    its database is down): whether the token is valid is unknowable, so the answer is a
    503 to retry, not a 401 that would make a client drop a good token."""


class InvalidToken(Exception):
    """The token is not acceptable; the message is safe to show a client."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified caller, built only from a token's verified claims."""

    user_id: str
    role: str
    session_id: str
    token_id: str
    issued_at: float  # NumericDate with millisecond precision (auth issues it so)
    expires_at: int
    email_verified: bool

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def http_jwks_fetcher(url: str, timeout: float = 2.0) -> JwksFetcher:
    async def fetch() -> Mapping[str, Any]:
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        async with aiohttp.ClientSession(timeout=client_timeout) as session:
            async with session.get(url) as response:
                response.raise_for_status()
                data: Mapping[str, Any] = await response.json()
                return data

    return fetch


class JwksCache:
    """Public keys by `kid`: cached, refreshed when stale or on an unknown kid, rate limited.

    If the auth service is briefly down, the keys already known keep working.
    """

    def __init__(
        self, fetch: JwksFetcher, *, max_age: float = 300.0, min_refresh_interval: float = 10.0
    ) -> None:
        self._fetch = fetch
        self.max_age = max_age
        self.min_refresh_interval = min_refresh_interval
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at = 0.0
        self._attempted_at = -1e9
        self.refresh_failed = False  # the last attempt to fetch the JWKS failed
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> dict[str, Any] | None:
        stale = time.monotonic() - self._fetched_at > self.max_age
        if kid not in self._keys or stale:
            await self._refresh()
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        async with self._lock:
            now = time.monotonic()
            if now - self._attempted_at < self.min_refresh_interval:
                return
            self._attempted_at = now
            try:
                data = await self._fetch()
            except Exception as exc:
                self.refresh_failed = True
                log.warning(
                    "jwks refresh failed, keeping %d cached keys: %s",
                    len(self._keys),
                    type(exc).__name__,
                )
                return
            self.refresh_failed = False
            keys = {k["kid"]: dict(k) for k in data.get("keys", []) if "kid" in k}
            if keys:
                self._keys = keys
                self._fetched_at = now


class TokenVerifier:
    def __init__(self, jwks: JwksCache, *, issuer: str, audience: str, leeway: int = 10) -> None:
        self.jwks = jwks
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except JWTError as exc:
            raise InvalidToken("malformed token") from exc
        if header.get("alg") not in ALGORITHMS:
            raise InvalidToken("token algorithm not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidToken("token has no key id")
        key = await self.jwks.key(kid)
        if key is None:
            if self.jwks.refresh_failed:
                raise KeysUnavailable(kid)
            raise InvalidToken("unknown signing key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                options={"require_" + c: True for c in ("exp", "iat", "sub", "jti")}
                | {"leeway": self.leeway},
            )
        except JWTError as exc:
            raise InvalidToken("token is invalid or expired") from exc
        if any(c not in claims for c in REQUIRED_CLAIMS):
            raise InvalidToken("token lacks required claims")
        return Principal(
            user_id=str(claims["sub"]),
            role=str(claims["role"]),
            session_id=str(claims["sid"]),
            token_id=str(claims["jti"]),
            issued_at=float(claims["iat"]),
            expires_at=int(claims["exp"]),
            email_verified=bool(claims.get("email_verified")),
        )
