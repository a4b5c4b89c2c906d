"""A tiny service for the graceful-shutdown test: the platform's app factory plus /slow."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, FastAPI

from services.common.app import ServiceSpec
from services.common.app import create_app as build
from services.common.settings import CommonSettings

SLOW_SECONDS = 0.5
router = APIRouter()


@router.get("/slow")
async def slow() -> dict[str, str]:
    await asyncio.sleep(SLOW_SECONDS)
    return {"status": "done"}


def create_app() -> FastAPI:
    return build(
        ServiceSpec(name="drain", settings=CommonSettings(), routers=[router], use_database=False)
    )
