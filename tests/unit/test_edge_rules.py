"""The gateway's public allowlist, matched as one pattern per method, says exactly what
its rules say one by one."""

from __future__ import annotations

import itertools

from gateway.edge_auth import AUTH_SENSITIVE, PUBLIC_ROUTES, is_auth_sensitive, is_public

PATHS = [
    "/api/v1/catalog",
    "/api/v1/catalog/products/1",
    "/api/v1/catalogue",
    "/api/v1/auth/login",
    "/api/v1/auth/login/x",
    "/api/v1/auth/password/reset",
    "/api/v1/auth/password/change",
    "/api/v1/auth/logout",
    "/.well-known/jwks.json",
    "/api/v1/auth/.well-known/jwks.json",
    "/.well-known/jwksXjson",
    "/healthz",
    "/healthzz",
    "/metrics",
    "/api/v1/users/me",
    "/",
]
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def test_combined_patterns_agree_with_each_rule() -> None:
    for method, path in itertools.product(METHODS, PATHS):
        assert is_public(method, path) == any(r.matches(method, path) for r in PUBLIC_ROUTES), (
            method,
            path,
        )
        assert is_auth_sensitive(method, path) == any(
            r.matches(method, path) for r in AUTH_SENSITIVE
        ), (method, path)
    assert is_public("GET", "/api/v1/catalog/products/1")
    assert not is_public("POST", "/api/v1/catalog/products")
    assert not is_public("GET", "/api/v1/users/me")
