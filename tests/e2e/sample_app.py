"""A tiny service built with the shared app factory, for platform tests under gunicorn:
one templated route, and the worker's pid in the answer so a test can tell workers apart."""

from __future__ import annotations

import os

from fastapi import APIRouter, FastAPI

from services.common.app import ServiceSpec
from services.common.app import create_app as build_app
from services.common.settings import CommonSettings

router = APIRouter()


@router.get("/items/{item_id}")
async def read_item(item_id: int) -> dict[str, int]:
    return {"id": item_id, "pid": os.getpid()}


def create_app() -> FastAPI:
    return build_app(
        ServiceSpec(name="sample", settings=CommonSettings(), routers=[router], use_database=False)
    )
