"""/healthz (the process answers), /readyz (its dependencies answer) and /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from services.common.metrics import metrics_endpoint

ReadinessCheck = Callable[[Request], Awaitable[None]]
CHECK_TIMEOUT_SECONDS = 2.0


async def check_database(request: Request) -> None:
    async with request.app.state.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def check_redis(request: Request) -> None:
    await request.app.state.redis.ping()


def health_router(checks: dict[str, ReadinessCheck]) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="The process is alive", name="liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="The process and its dependencies answer",
        # The readiness body, not a problem: probes and operators read `checks`.
        responses={
            503: {
                "description": "A dependency does not answer",
                "content": {"application/json": {}},
            }
        },
        name="readiness",
    )
    async def readyz(request: Request) -> JSONResponse:
        async def run(check: ReadinessCheck) -> str:
            try:
                await asyncio.wait_for(check(request), CHECK_TIMEOUT_SECONDS)
            except Exception:
                return "down"
            return "ok"

        results = await asyncio.gather(*(run(c) for c in checks.values()))
        status = dict(zip(checks, results, strict=True))
        ready = all(r == "ok" for r in results)
        return JSONResponse(
            {"status": "ok" if ready else "unavailable", "checks": status},
            status_code=200 if ready else 503,
        )

    router.add_api_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
    return router
