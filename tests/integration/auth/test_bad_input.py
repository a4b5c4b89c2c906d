"""Hostile or malformed bodies get a problem+json 4xx, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.auth.support import auth_client

pytestmark = pytest.mark.usefixtures("infra")
JSON = {"content-type": "application/json"}

CASES: list[tuple[str, dict[str, Any]]] = [
    ("/api/v1/auth/login", {"json": {"email": "a\x00@example.com", "password": "x"}}),
    ("/api/v1/auth/login", {"content": b'{"email": "\\ud800", "password": "p"}', "headers": JSON}),
    ("/api/v1/auth/login", {"json": ["not", "an", "object"]}),
    ("/api/v1/auth/login", {"content": b"\xff\xfe{", "headers": JSON}),
    ("/api/v1/auth/login", {"content": b"null", "headers": JSON}),
    ("/api/v1/auth/login", {"data": {"username": "a\x00b", "password": "p"}}),
    ("/api/v1/auth/login", {"files": {"username": ("a", b"x")}, "data": {"password": "p"}}),
    ("/api/v1/auth/login", {"data": {"username": "a@b.c", "password": "p", "grant_type": "x"}}),
    (
        "/api/v1/auth/register",
        {"content": b'{"email": "a@example.com", "password": "abcdefgh\\ud800"}', "headers": JSON},
    ),
    ("/api/v1/auth/register", {"json": {"email": "a@example.com", "password": "p" * 5000}}),
    ("/api/v1/auth/password/forgot", {"json": {"email": "a\x00b@example.com"}}),
    ("/api/v1/auth/refresh", {"json": {"refresh_token": "\x00"}}),
    ("/api/v1/auth/refresh", {"json": {"refresh_token": "x" * 600}}),
    ("/api/v1/auth/verify-email", {"content": b'{"token": "\\ud800"}', "headers": JSON}),
    ("/api/v1/auth/password/reset", {"json": {"token": "t", "new_password": "x", "extra": 1}}),
]


async def test_malformed_requests_are_client_errors() -> None:
    async with auth_client() as (_, client):
        for path, kwargs in CASES:
            response = await client.post(path, **kwargs)
            assert 400 <= response.status_code < 500, (path, kwargs, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
