"""Authentication at the edge: an explicit allowlist of public routes, a verified,
non-revoked access token for everything else.

A public route called with a token still has the token verified (an invalid one is a
401) so that, e.g., an admin's catalog reads carry the admin's identity upstream.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import redis.asyncio as aioredis

from services import registry
from services.common import problems
from services.common.jwt import Principal, TokenVerifier
from services.common.security import authenticate_token, bearer_token

log = logging.getLogger("gateway.edge_auth")


@dataclass(frozen=True, slots=True)
class PublicRule:
    methods: frozenset[str]
    pattern: re.Pattern[str]

    def matches(self, method: str, path: str) -> bool:
        return method in self.methods and self.pattern.fullmatch(path) is not None


def _rule(methods: str, pattern: str) -> PublicRule:
    return PublicRule(frozenset(methods.split()), re.compile(pattern))


_AUTH = "/api/v1/auth"
# Routes that rate limits treat as credential endpoints (tighter, per IP).
AUTH_SENSITIVE = (
    _rule("POST", rf"{_AUTH}/(login|register|refresh|password/forgot|verify-email/resend)"),
)
# Routes that hash a password (auth's admission gate, docs/performance.md): when auth sheds
# one, the gateway refuses that route itself for a moment (proxy.EDGE_SHED_SECONDS).
HASHING = (_rule("POST", rf"{_AUTH}/(login|register|password/change|password/reset)"),)
PUBLIC_ROUTES: tuple[PublicRule, ...] = (
    # Each service's public routes are listed in its entry of the service registry.
    *(_rule(route.methods, route.path) for route in registry.PUBLIC_ROUTES),
    # Served by the gateway itself; listed so the allowlist is the whole truth.
    _rule("GET HEAD", r"/(healthz|readyz|metrics|docs|docs/oauth2-redirect|openapi\.json)"),
)


def _by_method(rules: tuple[PublicRule, ...]) -> dict[str, re.Pattern[str]]:
    """One alternation per method: a single match per request instead of one per rule."""
    methods = {m for rule in rules for m in rule.methods}
    return {
        m: re.compile("|".join(f"(?:{r.pattern.pattern})" for r in rules if m in r.methods))
        for m in methods
    }


_PUBLIC = _by_method(PUBLIC_ROUTES)
_AUTH_SENSITIVE = _by_method(AUTH_SENSITIVE)
_HASHING = _by_method(HASHING)


def is_public(method: str, path: str) -> bool:
    pattern = _PUBLIC.get(method)
    return pattern is not None and pattern.fullmatch(path) is not None


def is_auth_sensitive(method: str, path: str) -> bool:
    pattern = _AUTH_SENSITIVE.get(method)
    return pattern is not None and pattern.fullmatch(path) is not None


class EdgeAuth:
    def __init__(self, verifier: TokenVerifier, redis: aioredis.Redis) -> None:
        self.verifier = verifier
        self.redis = redis

    async def authenticate(
        self, method: str, path: str, authorization: str | None
    ) -> Principal | None:
        """The verified caller, None for an anonymous call to a public route; raises
        ProblemError 401 (no/invalid/revoked token) or 503 (revocations unknowable)."""
        token = bearer_token(authorization)
        if token is None:
            if authorization:
                raise problems.unauthorized("The Authorization header must be a Bearer token.")
            if is_public(method, path):
                return None
            raise problems.unauthorized("A bearer access token is required.", error=None)
        return await authenticate_token(self.verifier, self.redis, token)


def is_hashing(method: str, path: str) -> bool:
    pattern = _HASHING.get(method)
    return pattern is not None and pattern.fullmatch(path) is not None
