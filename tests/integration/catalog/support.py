"""Helpers for the catalog tests: apps, tokens, product factories."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from services.catalog.app import create_app
from services.catalog.deps import CatalogResources
from services.catalog.settings import CatalogSettings
from services.common.state import provided
from tests.support.asgi import running
from tests.support.tokens import bearer, jwks_fetcher, mint

API = "/api/v1/catalog"


def settings(**overrides: Any) -> CatalogSettings:
    return CatalogSettings(**({"background_tasks": False} | overrides))


@asynccontextmanager
async def catalog_client(**overrides: Any) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings(**overrides), jwks_fetcher=jwks_fetcher)
    async with running(app) as client:
        yield app, client


def resources(app: FastAPI) -> CatalogResources:
    """What the running catalog keeps per process (caches, codecs, row readers)."""
    return provided(app, CatalogResources)


def admin_headers(user_id: str | None = None) -> dict[str, str]:
    return bearer(mint(user_id, role="admin"))


def user_headers() -> dict[str, str]:
    return bearer(mint(role="user"))


def sku() -> str:
    return f"SKU-{uuid.uuid4().hex[:12]}"


def product_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sku": sku(),
        "name": "Blue kettle",
        "description": "Boils water fast",
        "price": "19.99",
        "currency": "EUR",
        "stock": 5,
        "status": "active",
    }
    body.update(overrides)
    return body


async def create_product(
    client: httpx.AsyncClient, headers: dict[str, str] | None = None, **overrides: Any
) -> dict[str, Any]:
    response = await client.post(
        f"{API}/products", json=product_body(**overrides), headers=headers or admin_headers()
    )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def create_category(
    client: httpx.AsyncClient, parent_id: str | None = None, **overrides: Any
) -> dict[str, Any]:
    body = {"slug": f"cat-{uuid.uuid4().hex[:10]}", "name": "Category", "parent_id": parent_id}
    body.update(overrides)
    response = await client.post(f"{API}/categories", json=body, headers=admin_headers())
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


def is_problem(response: httpx.Response, status: int) -> bool:
    return (
        response.status_code == status
        and response.headers["content-type"].startswith("application/problem+json")
        and response.json()["status"] == status
    )
