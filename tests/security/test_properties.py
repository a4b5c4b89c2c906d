"""API3 broken object property level authorization: no mass assignment, no secret field
in any response. Driven by the OpenAPI documents (every request body, every response).

The public/full views of a profile are checked in
tests/integration/users/test_profile.py::test_other_users_see_only_the_public_view_and_cannot_write
and drafts hidden from the public in
tests/integration/catalog/test_products.py::test_drafts_hidden_from_public_visible_to_admin."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.integration.auth.support import PASSWORD, auth_client, bearer, new_email, verified_user
from tests.security.support import (
    BODIES,
    IF_MATCH,
    USER_OPERATIONS,
    Operation,
    clients,
    operations,
)
from tests.support.tokens import mint

pytestmark = pytest.mark.usefixtures("infra")

# Fields a client must never set: server-owned or privileged.
SERVER_OWNED = (
    "id",
    "email",
    "role",
    "status",
    "created_at",
    "updated_at",
    "version",
    "email_verified",
    "password_hash",
    "stock",
)
SECRET_NAME = re.compile(r"(password|_hash$|hash_|secret|private|salt)", re.IGNORECASE)


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = doc
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _objects(doc: dict[str, Any], schema: dict[str, Any], seen: set[int]) -> list[dict[str, Any]]:
    """Every object schema reachable from `schema` (refs, arrays, unions)."""
    schema = _resolve(doc, schema)
    if id(schema) in seen:
        return []
    seen.add(id(schema))
    found = [schema] if schema.get("type") == "object" or "properties" in schema else []
    children: list[dict[str, Any]] = []
    for key in ("anyOf", "oneOf", "allOf"):
        children += schema.get(key, [])
    if "items" in schema:
        children.append(schema["items"])
    children += list(schema.get("properties", {}).values())
    for child in children:
        found += _objects(doc, child, seen)
    return found


def _request_schemas(op: Operation, doc: dict[str, Any]) -> list[dict[str, Any]]:
    content = op.spec.get("requestBody", {}).get("content", {})
    out = []
    for media, entry in content.items():
        if media.endswith("json") or media.endswith("x-www-form-urlencoded"):
            out += _objects(doc, entry.get("schema", {}), set())
    return out


async def test_every_request_body_forbids_unknown_fields() -> None:
    """extra="forbid" everywhere: a field the model does not declare is a 422, never
    silently dropped or, worse, assigned."""
    seen = 0
    async with clients() as apps:
        for service, (app, _) in apps.items():
            doc = app.openapi()
            for op in operations(service, app):
                for schema in _request_schemas(op, doc):
                    assert schema.get("additionalProperties") is False, (str(op), schema)
                    seen += 1
    assert seen >= 15


async def test_server_owned_fields_in_bodies_are_422() -> None:
    """Each body operation, sent a valid body plus one server-owned field it does not
    declare, by a caller allowed to use the operation (users and catalog trust the test
    keys; the auth bodies carry only credentials, see the register test below)."""
    tried = 0
    async with clients("users", "catalog") as apps:
        for service, (app, client) in apps.items():
            doc = app.openapi()
            for op in operations(service, app):
                if op.key not in BODIES:
                    continue
                schemas = _request_schemas(op, doc)
                declared = {name for s in schemas for name in s.get("properties", {})}
                role = "user" if op.key in USER_OPERATIONS else "admin"
                headers = {**bearer(mint(role=role)), **IF_MATCH}
                for name in SERVER_OWNED:
                    if name in declared:
                        continue
                    body = BODIES[op.key]()
                    if isinstance(body, list):
                        body[0][name] = _value(name)
                    else:
                        body[name] = _value(name)
                    response = await client.request(op.method, op.url(), json=body, headers=headers)
                    assert response.status_code == 422, (str(op), name, response.text)
                    tried += 1
    assert tried >= 40


def _value(name: str) -> Any:
    return {
        "id": "00000000-0000-0000-0000-000000000001",
        "role": "admin",
        "status": "active",
        "email_verified": True,
        "version": 1,
        "stock": 1_000_000,
    }.get(name, "x")


async def test_register_cannot_choose_role_or_verification() -> None:
    async with auth_client() as (_, client):
        for extra in ({"role": "admin"}, {"email_verified": True}, {"status": "active"}):
            response = await client.post(
                "/api/v1/auth/register",
                json={"email": new_email(), "password": PASSWORD, **extra},
            )
            assert response.status_code == 422, extra


async def test_no_response_schema_has_a_secret_field() -> None:
    async with clients() as apps:
        for service, (app, _) in apps.items():
            doc = app.openapi()
            for op in operations(service, app):
                for status, response in op.spec.get("responses", {}).items():
                    for entry in response.get("content", {}).values():
                        for schema in _objects(doc, entry.get("schema", {}), set()):
                            for field in schema.get("properties", {}):
                                assert not SECRET_NAME.search(field), (str(op), status, field)


async def test_no_password_hash_in_any_auth_response() -> None:
    """Walk every auth flow and read every answer for hash material."""
    answers: list[httpx.Response] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        answers.append(response)

    async with auth_client() as (app, client):
        client.event_hooks["response"].append(keep)
        email, pair = await verified_user(app, client)
        headers = bearer(pair["access_token"])
        await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        await client.post("/api/v1/auth/login", json={"email": email, "password": "wrong pass!"})
        await client.get("/api/v1/auth/sessions", headers=headers)
        await client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        await client.post("/api/v1/auth/password/forgot", json={"email": email})
        await client.post(
            "/api/v1/auth/password/change",
            json={"current_password": PASSWORD, "new_password": "a brand new passphrase 7"},
            headers=headers,
        )
        await _hash_of(app, email)
    assert len(answers) >= 9
    for response in answers:
        text = response.text + str(response.headers)
        assert "$argon2" not in text, response.request.url
        assert "password_hash" not in text, response.request.url


async def _hash_of(app: FastAPI, email: str) -> str:
    """The stored hash exists (so the scan above looks for something real)."""
    from sqlmodel import select

    from services.auth.models import Account

    async with app.state.session_factory() as session:
        account = (await session.exec(select(Account).where(Account.email == email))).one()
    assert account.password_hash.startswith("$argon2")
    return account.password_hash
