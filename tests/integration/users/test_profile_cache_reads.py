"""Profile cache reads go over the lean pipelined Redis connection (as catalog's do),
and the connection is closed with the app."""

from __future__ import annotations

import httpx
import redis.asyncio as aioredis
from fastapi import FastAPI

from services.common.state import provided
from services.users.app import FAST_CLIENT_NAME
from services.users.state import UsersState
from tests.integration.users.conftest import Person, register
from tests.support.asgi import running
from tests.support.infra import Infra
from tests.support.polling import eventually


async def _client_at(redis: aioredis.Redis, addr: str) -> dict[str, str] | None:
    return next((c for c in await redis.client_list() if c["addr"] == addr), None)


async def test_profile_reads_use_the_lean_connection_closed_at_shutdown(
    app: FastAPI, infra: Infra
) -> None:
    owner, viewer = Person(), Person()
    redis = aioredis.Redis.from_url(infra.redis_url)
    try:
        async with running(app) as client:
            await register(app, owner, "lean-reads@example.test")
            first = await client.get(f"/api/v1/users/{owner.id}", headers=viewer.headers)
            second = await client.get(f"/api/v1/users/{owner.id}", headers=viewer.headers)
            assert first.status_code == second.status_code == 200
            assert first.json() == second.json() and first.json()["id"] == owner.id
            lean = provided(app, UsersState).cache_reads
            host, port = lean._protocol.transport.get_extra_info("sockname")[:2]
            addr = f"{host}:{port}"
            ours = await _client_at(redis, addr)
            assert ours is not None
            assert ours["name"] == FAST_CLIENT_NAME
            assert ours["cmd"] == "get"  # the last command it carried: a cache read

        async def gone() -> bool:  # the app stopped: its connection goes away
            return await _client_at(redis, addr) is None

        await eventually(gone, what="the lean connection closed")
    finally:
        await redis.aclose()


async def test_without_redis_the_profile_is_still_served(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    owner = Person()
    await register(app, owner, "lean-outage@example.test")
    lean = provided(app, UsersState).cache_reads
    lean._address = ("127.0.0.1", 1)  # nothing listens there: the reads fail
    await lean.close()
    response = await client.get(f"/api/v1/users/{owner.id}", headers=Person().headers)
    assert response.status_code == 200 and response.json()["id"] == owner.id
