"""GET/PATCH/DELETE /users/me and GET /users/{id}: creation on first access, validation,
per-object authorization, ETags, If-Match and cache invalidation."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from fastapi import FastAPI

from services.common.state import provided
from services.users.state import UsersState
from tests.integration.users.conftest import Person, outbox_topics, register
from tests.support.tokens import bearer, mint

ME = "/api/v1/users/me"


async def test_me_is_created_from_the_token_then_the_event_fills_the_email(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    alice = Person()
    first = await client.get(ME, headers=alice.headers)
    assert first.status_code == 200
    body = first.json()
    assert body["id"] == alice.id and body["email"] is None and body["role"] == "user"
    assert body["status"] == "active" and body["version"] == 1

    await register(app, alice, "Alice@Example.TEST")
    after = (await client.get(ME, headers=alice.headers)).json()
    assert after["email"] == "alice@example.test"  # lowercased, and the cache was invalidated
    assert after["version"] == 2


async def test_concurrent_first_access_creates_one_profile(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    bob = Person()
    answers = await asyncio.gather(*(client.get(ME, headers=bob.headers) for _ in range(8)))
    assert {r.status_code for r in answers} == {200}
    assert {r.json()["id"] for r in answers} == {bob.id}


async def test_requests_without_a_valid_token_are_refused(client: httpx.AsyncClient) -> None:
    assert (await client.get(ME)).status_code == 401
    forged = mint(str(uuid.uuid4()), aud="someone-else")
    response = await client.get(ME, headers=bearer(forged))
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "body",
    [
        {"role": "admin"},
        {"status": "active"},
        {"email": "x@example.test"},
        {"id": str(uuid.uuid4())},
        {"display_name": "ok", "is_admin": True},
        {"display_name": ""},
        {"display_name": "   "},
        {"display_name": "x" * 101},
        {"display_name": None},
        {"bio": "b" * 1001},
        {"avatar_url": "http://cdn.example.test/a.png"},
        {"avatar_url": "javascript:alert(1)"},
        {"avatar_url": "https://user:pw@cdn.example.test/a.png"},
        {"avatar_url": "https://" + "a" * 2048 + ".test/"},
        {"locale": "english please"},
        {"locale": "e"},
        {"time_zone": "Mars/Olympus_Mons"},
        {"time_zone": "../../etc/passwd"},
        {},
    ],
)
async def test_patch_me_rejects_bad_and_forbidden_fields(
    client: httpx.AsyncClient, body: dict
) -> None:
    carol = Person()
    response = await client.patch(ME, json=body, headers=carol.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"]
    profile = (await client.get(ME, headers=carol.headers)).json()
    assert profile["role"] == "user" and profile["version"] == 1  # nothing was written


async def test_patch_me_updates_owned_fields_and_clears_with_null(
    client: httpx.AsyncClient,
) -> None:
    dave = Person()
    changes = {
        "display_name": "  Dave D  ",
        "bio": "Hello",
        "avatar_url": "https://cdn.example.test/d.png",
        "locale": "pt-BR",
        "time_zone": "America/Sao_Paulo",
    }
    response = await client.patch(ME, json=changes, headers=dave.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["display_name"] == "Dave D"
    assert body["locale"] == "pt-BR" and body["time_zone"] == "America/Sao_Paulo"
    assert response.headers["etag"] == f'"v{body["version"]}"'

    cleared = (await client.patch(ME, json={"bio": None}, headers=dave.headers)).json()
    assert cleared["bio"] is None and cleared["display_name"] == "Dave D"


async def test_other_users_see_only_the_public_view_and_cannot_write(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    owner, other, admin = Person(), Person(), Person("admin")
    await register(app, owner, "owner@example.test")
    await client.patch(ME, json={"display_name": "Owner", "bio": "secret"}, headers=owner.headers)

    public = await client.get(f"/api/v1/users/{owner.id}", headers=other.headers)
    assert public.status_code == 200
    assert public.json() == {"id": owner.id, "display_name": "Owner", "avatar_url": None}

    for viewer in (owner, admin):
        full = (await client.get(f"/api/v1/users/{owner.id}", headers=viewer.headers)).json()
        assert full["email"] == "owner@example.test" and full["bio"] == "secret"

    # The admin route refuses non-admins, whatever the object.
    attempt = await client.patch(
        f"/api/v1/users/{owner.id}",
        json={"status": "disabled"},
        headers={**other.headers, "If-Match": '"v2"'},
    )
    assert attempt.status_code == 403
    owned = (await client.get(ME, headers=owner.headers)).json()
    assert owned["status"] == "active"


async def test_unknown_and_malformed_ids(client: httpx.AsyncClient) -> None:
    eve = Person()
    missing = await client.get(f"/api/v1/users/{uuid.uuid4()}", headers=eve.headers)
    assert missing.status_code == 404
    bad = await client.get("/api/v1/users/not-a-uuid", headers=eve.headers)
    assert bad.status_code == 422


async def test_etag_and_304(client: httpx.AsyncClient) -> None:
    frank, viewer = Person(), Person()
    first = await client.get(ME, headers=frank.headers)
    tag = first.headers["etag"]
    assert tag == '"v1"'
    again = await client.get(ME, headers={**frank.headers, "If-None-Match": tag})
    assert again.status_code == 304 and again.content == b""
    weak = await client.get(ME, headers={**frank.headers, "If-None-Match": f"W/{tag}"})
    assert weak.status_code == 304

    public = await client.get(f"/api/v1/users/{frank.id}", headers=viewer.headers)
    assert public.headers["etag"] == '"v1-public"'
    assert (
        await client.get(
            f"/api/v1/users/{frank.id}", headers={**viewer.headers, "If-None-Match": tag}
        )
    ).status_code == 200  # the full view's tag is not the public view's

    await client.patch(ME, json={"display_name": "Frank"}, headers=frank.headers)
    changed = await client.get(ME, headers={**frank.headers, "If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["etag"] == '"v2"'


async def test_if_match_guards_against_lost_updates(client: httpx.AsyncClient) -> None:
    gina = Person()
    tag = (await client.get(ME, headers=gina.headers)).headers["etag"]
    ok = await client.patch(
        ME, json={"display_name": "One"}, headers={**gina.headers, "If-Match": tag}
    )
    assert ok.status_code == 200
    stale = await client.patch(
        ME, json={"display_name": "Two"}, headers={**gina.headers, "If-Match": tag}
    )
    assert stale.status_code == 412
    weak = await client.patch(
        ME, json={"display_name": "Two"}, headers={**gina.headers, "If-Match": 'W/"v2"'}
    )
    assert weak.status_code == 412  # If-Match uses the strong comparison
    assert (await client.get(ME, headers=gina.headers)).json()["display_name"] == "One"


async def test_concurrent_writers_with_the_same_etag_one_wins(client: httpx.AsyncClient) -> None:
    hal = Person()
    tag = (await client.get(ME, headers=hal.headers)).headers["etag"]
    answers = await asyncio.gather(
        *(
            client.patch(
                ME, json={"display_name": f"W{i}"}, headers={**hal.headers, "If-Match": tag}
            )
            for i in range(6)
        )
    )
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200, 412, 412, 412, 412, 412]
    winner = next(r.json() for r in answers if r.status_code == 200)
    assert (await client.get(ME, headers=hal.headers)).json()["display_name"] == winner[
        "display_name"
    ]


async def test_cache_is_filled_and_invalidated_on_write(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    ivy, viewer = Person(), Person()
    await client.get(ME, headers=ivy.headers)
    cache = provided(app, UsersState).profile_cache
    key = cache.key("v1", ivy.id)
    assert await app.state.redis.exists(key) == 1

    await client.patch(ME, json={"display_name": "Ivy"}, headers=ivy.headers)
    assert await app.state.redis.exists(key) == 0
    seen = await client.get(f"/api/v1/users/{ivy.id}", headers=viewer.headers)
    assert seen.json()["display_name"] == "Ivy"
    assert await app.state.redis.exists(key) == 1


async def test_delete_me_anonymises_emits_event_and_revokes_tokens(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    jo, viewer, admin = Person(), Person(), Person("admin")
    await register(app, jo, "jo@example.test")
    await client.patch(ME, json={"display_name": "Jo", "bio": "bio"}, headers=jo.headers)
    await client.get(f"/api/v1/users/{jo.id}", headers=viewer.headers)  # cached

    assert (await client.delete(ME, headers=jo.headers)).status_code == 204
    assert await outbox_topics(app, jo.id) == ["user.deleted"]
    assert (await client.get(ME, headers=jo.headers)).status_code == 401
    for someone in (viewer, admin):
        gone = await client.get(f"/api/v1/users/{jo.id}", headers=someone.headers)
        assert gone.status_code == 404

    # Anonymised in the directory, and a late registration event does not restore the email.
    await register(app, jo, "jo@example.test")
    listed = await client.get(
        "/api/v1/users", params={"status": "deleted", "limit": 100}, headers=admin.headers
    )
    row = next(p for p in listed.json()["items"] if p["id"] == jo.id)
    assert row["email"] is None and row["display_name"] == "" and row["bio"] is None


async def test_token_with_a_non_uuid_subject_is_refused_not_a_500(
    client: httpx.AsyncClient,
) -> None:
    token = mint("not-a-uuid")
    for method, url in (("GET", ME), ("GET", f"/api/v1/users/{uuid.uuid4()}"), ("DELETE", ME)):
        response = await client.request(method, url, headers=bearer(token))
        assert response.status_code == 401, (method, url, response.text)
