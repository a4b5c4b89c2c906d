"""PATCH /users/{id} by admins: If-Match required, events, instant token revocation,
no self-demotion."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI

from tests.integration.users.conftest import Person, outbox_topics, register

ME = "/api/v1/users/me"


def user_url(person: Person) -> str:
    return f"/api/v1/users/{person.id}"


async def etag_of(client: httpx.AsyncClient, admin: Person, target: Person) -> str:
    return (await client.get(user_url(target), headers=admin.headers)).headers["etag"]


async def test_deactivation_blocks_an_issued_token_at_once_and_reactivation_emits(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin, kim = Person("admin"), Person()
    await register(app, kim, "kim@example.test")
    assert (await client.get(ME, headers=kim.headers)).status_code == 200

    tag = await etag_of(client, admin, kim)
    response = await client.patch(
        user_url(kim), json={"status": "disabled"}, headers={**admin.headers, "If-Match": tag}
    )
    assert response.status_code == 200 and response.json()["status"] == "disabled"
    blocked = await client.get(ME, headers=kim.headers)
    assert blocked.status_code == 401  # the very next request with the old token
    assert (await client.get(ME, headers=admin.headers)).status_code == 200

    tag = response.headers["etag"]
    back = await client.patch(
        user_url(kim), json={"status": "active"}, headers={**admin.headers, "If-Match": tag}
    )
    assert back.status_code == 200 and back.json()["status"] == "active"
    assert await outbox_topics(app, kim.id) == ["user.deactivated", "user.reactivated"]


async def test_role_change_emits_event_and_revokes(app: FastAPI, client: httpx.AsyncClient) -> None:
    admin, lea = Person("admin"), Person()
    await register(app, lea, "lea@example.test")
    tag = await etag_of(client, admin, lea)
    response = await client.patch(
        user_url(lea), json={"role": "admin"}, headers={**admin.headers, "If-Match": tag}
    )
    assert response.status_code == 200 and response.json()["role"] == "admin"
    assert (await client.get(ME, headers=lea.headers)).status_code == 401
    assert await outbox_topics(app, lea.id) == ["user.role_changed"]
    async with app.state.engine.connect() as conn:
        from sqlalchemy import text

        payload = (
            await conn.execute(
                text("SELECT payload FROM users.outbox WHERE payload->>'user_id' = :u"),
                {"u": lea.id},
            )
        ).scalar_one()
    assert payload == {"user_id": lea.id, "role": "admin"}

    # The same change again is a no-op: no new version, no event.
    tag = response.headers["etag"]
    same = await client.patch(
        user_url(lea), json={"role": "admin"}, headers={**admin.headers, "If-Match": tag}
    )
    assert same.status_code == 200 and same.headers["etag"] == tag
    assert await outbox_topics(app, lea.id) == ["user.role_changed"]


async def test_if_match_is_required_and_checked(app: FastAPI, client: httpx.AsyncClient) -> None:
    admin, max_ = Person("admin"), Person()
    await register(app, max_, "max@example.test")
    missing = await client.patch(user_url(max_), json={"role": "admin"}, headers=admin.headers)
    assert missing.status_code == 428
    tag = await etag_of(client, admin, max_)
    await client.patch(ME, json={"display_name": "Max"}, headers=max_.headers)  # a new version
    stale = await client.patch(
        user_url(max_), json={"role": "admin"}, headers={**admin.headers, "If-Match": tag}
    )
    assert stale.status_code == 412
    profile = (await client.get(user_url(max_), headers=admin.headers)).json()
    assert profile["role"] == "user"
    assert await outbox_topics(app, max_.id) == []


async def test_admin_cannot_demote_or_disable_themselves(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin = Person("admin")
    await register(app, admin, "boss@example.test")
    tag = await etag_of(client, admin, admin)
    for body in ({"role": "user"}, {"status": "disabled"}):
        response = await client.patch(
            user_url(admin), json=body, headers={**admin.headers, "If-Match": tag}
        )
        assert response.status_code == 409
    assert (await client.get(ME, headers=admin.headers)).json()["role"] == "admin"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"status": "deleted"},
        {"role": "root"},
        {"email": "x@example.test"},
        {"display_name": "x"},
        {"role": "admin", "version": 9},
    ],
)
async def test_admin_patch_validation(app: FastAPI, client: httpx.AsyncClient, body: dict) -> None:
    admin, nia = Person("admin"), Person()
    await register(app, nia, "nia@example.test")
    response = await client.patch(
        user_url(nia), json=body, headers={**admin.headers, "If-Match": '"v1"'}
    )
    assert response.status_code == 422


async def test_admin_patch_of_unknown_or_deleted_user_is_404(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin, gone = Person("admin"), Person()
    unknown = await client.patch(
        f"/api/v1/users/{uuid.uuid4()}",
        json={"status": "active"},
        headers={**admin.headers, "If-Match": '"v1"'},
    )
    assert unknown.status_code == 404
    await client.get(ME, headers=gone.headers)
    assert (await client.delete(ME, headers=gone.headers)).status_code == 204
    revived = await client.patch(
        user_url(gone), json={"status": "active"}, headers={**admin.headers, "If-Match": "*"}
    )
    assert revived.status_code == 404
