"""Issue 18 review findings on request bodies: deeply nested JSON (every route of every
service answers a 4xx problem, never a 500 from RecursionError) and the OAuth2 form
login's grant_type (the schema says what the validator enforces)."""

from __future__ import annotations

import pytest

from tests.security.support import IF_MATCH, clients, operations
from tests.support.tokens import bearer, mint

pytestmark = pytest.mark.usefixtures("infra")

DEPTH = 100_000  # far past CPython's recursion limit (1000) and pydantic's (255)
NESTED = [
    "[" * DEPTH + "]" * DEPTH,
    '{"a":' * DEPTH + "1" + "}" * DEPTH,
    '{"email": ' + "[" * DEPTH + "]" * DEPTH + ', "password": "x"}',
]


async def test_deeply_nested_json_is_a_problem_on_every_write_route() -> None:
    admin = {**bearer(mint(role="admin")), **IF_MATCH, "content-type": "application/json"}
    tried = 0
    async with clients() as apps:
        for service, (app, client) in apps.items():
            for op in operations(service, app):
                if op.method not in ("POST", "PUT", "PATCH"):
                    continue
                for body in NESTED:
                    response = await client.request(
                        op.method, op.url(), content=body, headers=admin
                    )
                    tried += 1
                    # A 4xx (auth's own routes may refuse the test token first), never a 5xx.
                    assert 400 <= response.status_code < 500, (
                        str(op),
                        response.status_code,
                        response.text[:300],
                    )
                    assert response.headers["content-type"].startswith(
                        "application/problem+json"
                    ), (str(op), response.headers["content-type"])
                    assert "Traceback" not in response.text
    assert tried >= 3 * 10  # the sweep reached the write routes


async def test_oauth2_form_grant_type_schema_matches_the_validator() -> None:
    async with clients("auth") as apps:
        app, client = apps["auth"]
        spec = app.openapi()["paths"]["/api/v1/auth/login"]["post"]["requestBody"]
        form = spec["content"]["application/x-www-form-urlencoded"]["schema"]
        grant = form["properties"]["grant_type"]
        # A form field cannot be null: the schema must not offer null (nor anyOf with it).
        assert "anyOf" not in grant, grant
        assert grant.get("type") == "string", grant
        assert grant.get("const", grant.get("enum", [None])[0]) == "password", grant
        assert "grant_type" not in form.get("required", [])
        # What the schema allows, the validator takes: no grant_type, or "password"
        # (bad credentials then, a 401, not a 422); an empty one is refused, as the
        # schema says.
        for fields, status in (
            ({}, 401),
            ({"grant_type": "password"}, 401),
            ({"grant_type": ""}, 422),
            ({"grant_type": "client_credentials"}, 422),
        ):
            response = await client.post(
                "/api/v1/auth/login",
                data={"username": "nobody@example.com", "password": "wrong", **fields},
            )
            assert response.status_code == status, (fields, response.text)
