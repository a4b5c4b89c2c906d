"""Redis cache outage: profiles are still served from PostgreSQL, writes still work."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from services.common.cache import Cache
from services.common.redis import create_redis
from services.common.state import provided
from services.users.state import UsersState
from tests.integration.users.conftest import Person, register
from tools.devstack.embedded import free_port


async def test_profiles_served_from_the_database_when_the_cache_redis_is_down(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    owner, viewer = Person(), Person()
    await register(app, owner, "outage@example.test")
    # A Redis that does not exist (a loopback port nobody listens on: connection refused);
    # revocation checks still use the real one, so only the cache is down.
    dead = create_redis(f"redis://127.0.0.1:{free_port()}/0", 0.2)
    provided(app, UsersState).profile_cache = Cache(dead, "profiles")
    try:
        public = await client.get(f"/api/v1/users/{owner.id}", headers=viewer.headers)
        assert public.status_code == 200 and public.json()["id"] == owner.id
        assert (
            provided(app, UsersState).profile_cache.guard.available is False
        )  # it did try, and failed

        patched = await client.patch(
            "/api/v1/users/me", json={"display_name": "Still here"}, headers=owner.headers
        )
        assert patched.status_code == 200
        again = await client.get(f"/api/v1/users/{owner.id}", headers=viewer.headers)
        assert again.json()["display_name"] == "Still here"
    finally:
        await dead.aclose()
