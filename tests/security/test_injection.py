"""Injection: every query and path parameter of every GET operation, fed SQL, LIKE,
tsquery and path metacharacters, answers a 4xx problem or a bounded, harmless page;
never a 5xx, never more rows than asked, never a match-all.

Targeted cases per list: tests/integration/catalog/test_lists.py::
test_injection_attempts_are_rejected_or_harmless and tests/integration/users/
test_directory.py::test_q_is_a_case_insensitive_prefix_on_email_or_name (LIKE
wildcards are literal)."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import pytest

from tests.security.support import clients, operations
from tests.support.tokens import bearer, mint

pytestmark = pytest.mark.usefixtures("infra")

PAYLOADS = [
    "' OR '1'='1",
    "1; DROP TABLE users.profiles; --",
    "1) UNION SELECT password_hash FROM auth.accounts --",
    "%",
    "_",
    "%%_%",
    "\\",
    "a:* | b:* & !c",
    "$where: 1",
    "{{7*7}}",
    "\x00",
    "../../etc/passwd",
    "é" * 50,
    "-1",
    "id desc",
]
LIMIT = 5


async def test_every_get_parameter_resists_injection() -> None:
    admin = bearer(mint(role="admin"))
    tried = 0
    async with clients() as apps:
        for service, (app, client) in apps.items():
            for op in operations(service, app):
                if op.method != "GET":
                    continue
                names = [n for n in op.query_names() if n not in ("limit",)]
                for payload in PAYLOADS:
                    for name in names:
                        params = {name: payload}
                        if "limit" in op.query_names():
                            params["limit"] = str(LIMIT)
                        response = await client.get(op.url(), params=params, headers=admin)
                        assert response.status_code < 500, (str(op), name, payload)
                        if response.status_code == 200 and "items" in response.json():
                            assert len(response.json()["items"]) <= LIMIT
                        tried += 1
                    if "{" in op.path:
                        values = {n: quote(payload, safe="") for n in _path_names(op.path)}
                        response = await client.get(op.url(values), headers=admin)
                        assert response.status_code in (404, 422, 405), (str(op), payload)
                        tried += 1
    assert tried >= 200


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


async def test_like_wildcards_in_lookups_are_literal() -> None:
    """A lookup by natural key with a wildcard finds nothing (no LIKE on keys)."""
    async with clients("catalog") as apps:
        _, client = apps["catalog"]
        admin = bearer(mint(role="admin"))
        body = {"sku": f"SKU-{uuid.uuid4().hex[:8]}", "name": "n", "price": "1", "currency": "EUR"}
        created = await client.post("/api/v1/catalog/products", json=body, headers=admin)
        assert created.status_code == 201
        for wild in ("%25", "_", body["sku"][:-1] + "_", body["sku"][:6] + "%25"):
            response = await client.get(f"/api/v1/catalog/products/by-sku/{wild}", headers=admin)
            assert response.status_code in (404, 422), wild
        found = await client.get(f"/api/v1/catalog/products/by-sku/{body['sku']}", headers=admin)
        assert found.status_code == 200


async def test_nul_characters_are_422_wherever_they_come_from() -> None:
    """PostgreSQL refuses NUL in text: a query, path or body value carrying one is the
    client's error, caught once for every service (services/common/db.py)."""
    async with clients("users", "catalog") as apps:
        _, users = apps["users"]
        _, catalog = apps["catalog"]
        admin = bearer(mint(role="admin"))
        answers = [
            await users.get("/api/v1/users", params={"q": "a\x00b"}, headers=admin),
            await users.patch("/api/v1/users/me", json={"bio": "a\x00b"}, headers=bearer(mint())),
            await catalog.get("/api/v1/catalog/products/by-sku/A%00B"),
            await catalog.post(
                "/api/v1/catalog/products",
                json={
                    "sku": "S-NUL",
                    "name": "n",
                    "price": "1",
                    "currency": "EUR",
                    "description": "a\x00b",
                },
                headers=admin,
            ),
        ]
    for response in answers:
        assert response.status_code in (404, 422), (response.request.url, response.text)
        assert response.headers["content-type"] == "application/problem+json"
