"""The per-request session commits when the handler returns and rolls back when it raises."""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter
from sqlalchemy import func, select

from services.common.app import ServiceSpec, create_app
from services.common.db import SessionDep
from services.common.settings import CommonSettings
from tests.integration.common.kit_models import KitItem
from tests.support.asgi import running
from tests.support.infra import Infra

router = APIRouter()


@router.post("/ok", status_code=201)
async def ok(session: SessionDep) -> dict[str, str]:
    session.add(KitItem(name="kept", price=Decimal("1.00")))
    return {"status": "created"}


@router.post("/fail")
async def fail(session: SessionDep) -> None:
    session.add(KitItem(name="dropped", price=Decimal("1.00")))
    await session.flush()
    raise RuntimeError("handler failed after writing")


async def count(factory, name: str) -> int:
    async with factory() as session:
        result = await session.exec(select(func.count()).where(KitItem.name == name))
        return int(result.one()[0])


async def test_commit_on_success_and_rollback_on_error(infra: Infra, kit_factory) -> None:
    settings = CommonSettings(database_url=infra.database_url, redis_url=infra.redis_url)
    app = create_app(ServiceSpec(name="kit", settings=settings, routers=[router]))
    async with running(app) as client:
        assert (await client.post("/ok")).status_code == 201
        assert (await client.post("/fail")).status_code == 500
        ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}
    assert await count(kit_factory, "kept") == 1
    assert await count(kit_factory, "dropped") == 0


async def test_readyz_is_503_when_redis_is_down(infra: Infra) -> None:
    settings = CommonSettings(database_url=infra.database_url, redis_url="redis://127.0.0.1:1/0")
    app = create_app(ServiceSpec(name="kit", settings=settings))
    async with running(app) as client:
        ready = await client.get("/readyz")
        alive = await client.get("/healthz")
    assert alive.status_code == 200
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"database": "ok", "redis": "down"}
