"""The per-request session commits when the handler returns and rolls back when it raises."""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter
from sqlalchemy import func, select

from services.common.app import ServiceSpec, create_app
from services.common.db import SessionDep, after_commit, commit, transaction
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


async def test_after_commit_hooks_run_after_the_commit_and_never_after_a_rollback(
    kit_factory,
) -> None:
    seen: list[tuple[str, int]] = []

    def hook(label: str):
        async def run() -> None:
            # The hook sees the committed state from another session.
            seen.append((label, await count(kit_factory, label)))

        return run

    async with transaction(kit_factory) as session:
        session.add(KitItem(name="committed", price=Decimal("1.00")))
        after_commit(session, hook("committed"), key="once")
        after_commit(session, hook("committed"), key="once")  # the same key: one run
        assert seen == []
    assert seen == [("committed", 1)]

    try:
        async with transaction(kit_factory) as session:
            session.add(KitItem(name="rolled-back", price=Decimal("1.00")))
            after_commit(session, hook("rolled-back"))
            await session.flush()
            raise RuntimeError("the block failed")
    except RuntimeError:
        pass
    assert seen == [("committed", 1)]
    assert await count(kit_factory, "rolled-back") == 0


async def test_a_mid_request_commit_runs_its_hooks_and_a_failing_hook_keeps_the_write(
    kit_factory,
) -> None:
    seen: list[str] = []

    async def broken() -> None:
        raise RuntimeError("cache down")

    async def noted() -> None:
        seen.append("ran")

    async with transaction(kit_factory) as session:
        session.add(KitItem(name="mid", price=Decimal("1.00")))
        after_commit(session, broken)
        after_commit(session, noted)
        await commit(session)
        assert seen == ["ran"]  # before the block ends: the commit ran them
    assert seen == ["ran"] and await count(kit_factory, "mid") == 1
