"""Login (JSON and OAuth2 form), refresh rotation and reuse detection, logout, sessions."""

from __future__ import annotations

import uuid

import pytest
from jose import jwt
from prometheus_client import REGISTRY
from sqlmodel import select

from services.auth.models import Account
from tests.integration.auth.support import (
    PASSWORD,
    auth_client,
    bearer,
    is_problem,
    login,
    new_email,
    verified_user,
)

pytestmark = pytest.mark.usefixtures("infra")
ME = "/api/v1/auth/sessions"


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_login_json_returns_token_pair_with_all_claims() -> None:
    async with auth_client() as (app, client):
        _, tokens = await verified_user(app, client)
        assert tokens["token_type"] == "bearer"
        assert tokens["expires_in"] == 900
        header = jwt.get_unverified_header(tokens["access_token"])
        assert header["alg"] == "RS256" and header["kid"]
        claims = jwt.get_unverified_claims(tokens["access_token"])
        assert {"iss", "aud", "sub", "exp", "iat", "nbf", "jti", "sid", "role"} <= set(claims)
        assert claims["role"] == "user" and claims["email_verified"] is True
        assert claims["iss"] == "http://auth:8001" and claims["aud"] == "shopstack"
        assert isinstance(claims["iat"], float) and round(claims["iat"], 3) == claims["iat"]
        assert claims["exp"] - int(claims["iat"]) == 900
        me = await client.get(ME, headers=bearer(tokens["access_token"]))
        assert me.status_code == 200


async def test_login_oauth2_form_for_swagger() -> None:
    async with auth_client() as (app, client):
        email, _ = await verified_user(app, client)
        response = await client.post(
            "/api/v1/auth/login",
            data={"grant_type": "password", "username": email, "password": PASSWORD, "scope": ""},
        )
        assert response.status_code == 200, response.text
        assert response.json()["token_type"] == "bearer"
        bad = await client.post("/api/v1/auth/login", data={"username": email})
        assert is_problem(bad, 422)
        schema = (await client.get("/openapi.json")).json()
        flows = schema["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]
        assert flows["password"]["tokenUrl"] == "/api/v1/auth/login"


async def test_wrong_password_and_unknown_email_look_alike() -> None:
    async with auth_client() as (app, client):
        email, _ = await verified_user(app, client)
        before = metric("auth_logins_total", result="failure", reason="bad_credentials")
        wrong = await client.post(
            "/api/v1/auth/login", json={"email": email, "password": "nope-nope"}
        )
        unknown = await client.post(
            "/api/v1/auth/login", json={"email": new_email(), "password": PASSWORD}
        )
        assert is_problem(wrong, 401) and is_problem(unknown, 401)
        strip = lambda r: {k: v for k, v in r.json().items() if k != "request_id"}  # noqa: E731
        assert strip(wrong) == strip(unknown)
        assert metric("auth_logins_total", result="failure", reason="bad_credentials") == before + 2
        garbage = await client.post(
            "/api/v1/auth/login", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert is_problem(garbage, 400)
        extra = await client.post(
            "/api/v1/auth/login", json={"email": email, "password": PASSWORD, "admin": True}
        )
        assert is_problem(extra, 422)


async def test_refresh_rotates_and_reuse_revokes_the_family() -> None:
    async with auth_client() as (app, client):
        _, first = await verified_user(app, client)
        rotated = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
        )
        assert rotated.status_code == 200
        second = rotated.json()
        assert second["refresh_token"] != first["refresh_token"]
        sid = jwt.get_unverified_claims(second["access_token"])["sid"]
        assert sid == jwt.get_unverified_claims(first["access_token"])["sid"]
        assert (await client.get(ME, headers=bearer(second["access_token"]))).status_code == 200

        reuse_before = metric("auth_refresh_token_reuse_total")
        replay = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
        )
        assert is_problem(replay, 401)
        assert metric("auth_refresh_token_reuse_total") == reuse_before + 1
        # The whole family is dead: the newest refresh token and the access token too.
        newest = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
        )
        assert is_problem(newest, 401)
        assert is_problem(await client.get(ME, headers=bearer(second["access_token"])), 401)
        unknown = await client.post("/api/v1/auth/refresh", json={"refresh_token": "x" * 43})
        assert is_problem(unknown, 401)


async def test_logout_kills_the_access_token_at_once() -> None:
    async with auth_client() as (app, client):
        email, tokens = await verified_user(app, client)
        other = await login(client, email)
        out = await client.post("/api/v1/auth/logout", headers=bearer(tokens["access_token"]))
        assert out.status_code == 204
        assert is_problem(await client.get(ME, headers=bearer(tokens["access_token"])), 401)
        refused = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert is_problem(refused, 401)
        # Another session of the same user is untouched.
        assert (await client.get(ME, headers=bearer(other["access_token"]))).status_code == 200


async def test_logout_all_kills_every_session() -> None:
    async with auth_client() as (app, client):
        email, one = await verified_user(app, client)
        two = await login(client, email)
        out = await client.post("/api/v1/auth/logout-all", headers=bearer(one["access_token"]))
        assert out.status_code == 204
        for tokens in (one, two):
            assert is_problem(await client.get(ME, headers=bearer(tokens["access_token"])), 401)
            refused = await client.post(
                "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
            )
            assert is_problem(refused, 401)
        fresh = await login(client, email)
        assert (await client.get(ME, headers=bearer(fresh["access_token"]))).status_code == 200


async def test_sessions_list_and_delete_only_own() -> None:
    async with auth_client() as (app, client):
        email, mine = await verified_user(app, client)
        second = await login(
            client, email, headers={"user-agent": "phone/1.0", "x-forwarded-for": "203.0.113.7"}
        )
        _, theirs = await verified_user(app, client)
        listed = await client.get(ME, headers=bearer(mine["access_token"]))
        items = listed.json()["items"]
        assert len(items) == 2
        current = [s for s in items if s["current"]]
        assert len(current) == 1
        assert current[0]["id"] == jwt.get_unverified_claims(mine["access_token"])["sid"]
        phone = next(s for s in items if s["user_agent"] == "phone/1.0")
        assert phone["ip"] == "203.0.113.7"
        assert {"created_at", "last_used_at", "expires_at"} <= set(phone)

        their_sid = jwt.get_unverified_claims(theirs["access_token"])["sid"]
        for target in (their_sid, str(uuid.uuid4())):
            denied = await client.delete(f"{ME}/{target}", headers=bearer(mine["access_token"]))
            assert is_problem(denied, 404)
        assert (await client.get(ME, headers=bearer(theirs["access_token"]))).status_code == 200
        assert is_problem(
            await client.delete(f"{ME}/not-a-uuid", headers=bearer(mine["access_token"])), 422
        )

        gone = await client.delete(f"{ME}/{phone['id']}", headers=bearer(mine["access_token"]))
        assert gone.status_code == 204
        assert is_problem(await client.get(ME, headers=bearer(second["access_token"])), 401)
        left = (await client.get(ME, headers=bearer(mine["access_token"]))).json()["items"]
        assert [s["id"] for s in left] == [current[0]["id"]]
        assert is_problem(await client.get(ME), 401)


async def test_login_rehashes_when_parameters_change() -> None:
    async with auth_client() as (app, client):
        email, _ = await verified_user(app, client)
    async with auth_client(argon2_memory_kib=2048) as (app, client):
        await login(client, email)
        async with app.state.session_factory() as session:
            account = (await session.exec(select(Account).where(Account.email == email))).one()
        assert "m=2048" in account.password_hash
        await login(client, email)
