"""Every error path answers RFC 9457 problem+json with the same shape."""

from __future__ import annotations

import logging

import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, ConfigDict, Field

from services.common.app import ServiceSpec, create_app
from services.common.errors import ProblemError
from services.common.settings import CommonSettings
from tests.support.asgi import running

router = APIRouter()


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    price: int = Field(ge=0)


@router.post("/items", status_code=201)
async def create_item(item: Item) -> Item:
    return item


@router.get("/conflict")
async def conflict() -> None:
    raise ProblemError(409, "The item changed.", type_="conflict", extra={"current_version": 3})


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("db password=hunter2 leaked")


def make_app() -> FastAPI:
    settings = CommonSettings(redis_url="redis://127.0.0.1:1/0")
    return create_app(
        ServiceSpec(name="kit", settings=settings, routers=[router], use_database=False)
    )


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["type"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_validation_error_lists_fields() -> None:
    async with running(make_app()) as client:
        response = await client.post("/items", json={"name": "", "price": -1, "role": "x"})
    body = assert_problem(response, 422)
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"body.name", "body.price", "body.role"}
    assert body["instance"] == "/items"


async def test_malformed_json_is_422_not_500() -> None:
    async with running(make_app()) as client:
        response = await client.post(
            "/items", content=b"{not json", headers={"content-type": "application/json"}
        )
    assert_problem(response, 422)


async def test_unknown_route_is_404_problem() -> None:
    async with running(make_app()) as client:
        response = await client.get("/nope")
    body = assert_problem(response, 404)
    assert "/nope" in body["detail"]


async def test_wrong_method_is_405_problem() -> None:
    async with running(make_app()) as client:
        response = await client.delete("/items")
    assert_problem(response, 405)


async def test_problem_error_keeps_type_and_extra() -> None:
    async with running(make_app()) as client:
        response = await client.get("/conflict")
    body = assert_problem(response, 409)
    assert body["type"].endswith("/conflict")
    assert body["current_version"] == 3


async def test_unhandled_error_is_500_without_internals(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    async with running(make_app()) as client:
        response = await client.get("/boom")
    body = assert_problem(response, 500)
    text = response.text
    assert "hunter2" not in text and "Traceback" not in text and "RuntimeError" not in text
    assert body["detail"] == "An unexpected error occurred."
