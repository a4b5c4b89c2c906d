"""Shared by the security tests: the three services in-process, their OpenAPI
operations, and request bodies that are valid for each operation.

Sweeps are driven by the OpenAPI documents, so a route added later is attacked too;
when a new operation needs a body to get past validation, the sweep says so.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from gateway.edge_auth import is_public
from services import registry
from services.catalog.app import create_app as catalog_app
from services.catalog.settings import CatalogSettings
from services.users.app import create_app as users_app
from services.users.settings import UsersSettings
from tests.integration.auth.support import settings as auth_settings
from tests.support.asgi import running
from tests.support.tokens import jwks_fetcher

HTTP_METHODS = ("get", "put", "post", "delete", "patch")
SERVICES = registry.names(api_only=True)
# Prefixes the gateway routes to each service.
PREFIXES = {s.name: s.prefixes for s in registry.API_SERVICES}

# What a signed-in user who is not an admin may call (beyond the public routes).
# Every other protected operation must answer 403 to them: a new route is an admin
# route until it is listed here on purpose.
USER_OPERATIONS = frozenset(
    {
        ("POST", "/api/v1/auth/logout"),
        ("POST", "/api/v1/auth/logout-all"),
        ("POST", "/api/v1/auth/password/change"),
        ("GET", "/api/v1/auth/sessions"),
        ("DELETE", "/api/v1/auth/sessions/{session_id}"),
        ("GET", "/api/v1/users/me"),
        ("PATCH", "/api/v1/users/me"),
        ("DELETE", "/api/v1/users/me"),
        ("GET", "/api/v1/users/{user_id}"),
    }
)


def build_app(service: str) -> FastAPI:
    """The service with cheap hashing and no background tasks; users and catalog trust
    the test JWKS (tests.support.tokens), auth signs with its own keys."""
    if service == "auth":
        from services.auth.app import create_app as auth_app

        return auth_app(auth_settings())
    if service == "users":
        settings = UsersSettings(background_tasks=False, cursor_secret="security-tests")
        return users_app(settings, jwks_fetcher=jwks_fetcher)
    return catalog_app(CatalogSettings(background_tasks=False), jwks_fetcher=jwks_fetcher)


@asynccontextmanager
async def clients(*names: str) -> AsyncIterator[dict[str, tuple[FastAPI, httpx.AsyncClient]]]:
    async with AsyncExitStack() as stack:
        out: dict[str, tuple[FastAPI, httpx.AsyncClient]] = {}
        for name in names or SERVICES:
            app = build_app(name)
            out[name] = (app, await stack.enter_async_context(running(app)))
        yield out


@dataclass(frozen=True)
class Operation:
    service: str
    method: str  # upper case
    path: str  # the template, e.g. /api/v1/users/{user_id}
    spec: dict[str, Any]

    @property
    def public(self) -> bool:
        return is_public(self.method, self.path)

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path

    def query_names(self) -> list[str]:
        return [p["name"] for p in self.spec.get("parameters", []) if p.get("in") == "query"]

    def query_param(self, name: str) -> dict[str, Any]:
        for p in self.spec.get("parameters", []):
            if p.get("in") == "query" and p["name"] == name:
                schema: dict[str, Any] = p.get("schema", {})
                return schema
        raise KeyError(name)

    def url(self, values: dict[str, str] | None = None) -> str:
        return fill(self.path, values or {})

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def flat_routes(routes: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(full path, route) for every route, inside included routers too (FastAPI keeps
    included routers as wrappers in `app.routes`)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from flat_routes(inner.routes, prefix + route.include_context.prefix)
        else:
            yield prefix + getattr(route, "path", ""), route


def routed(service: str, path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in PREFIXES[service])


def operations(service: str, app: FastAPI) -> Iterator[Operation]:
    """Every operation the gateway can reach on this service."""
    for path, item in app.openapi()["paths"].items():
        if not routed(service, path):
            continue
        for method in HTTP_METHODS:
            if method in item:
                yield Operation(service, method.upper(), path, item[method])


def fill(path: str, values: dict[str, str]) -> str:
    """A concrete URL for a template: given values, else a fresh value of the right kind."""
    out = path
    while "{" in out:
        start = out.index("{")
        end = out.index("}", start)
        name = out[start + 1 : end]
        value = values.get(name) or default_value(name)
        out = out[:start] + value + out[end + 1 :]
    return out


def default_value(name: str) -> str:
    if name.endswith("_id"):
        return str(uuid.uuid4())
    if name == "sku":
        return f"SKU-{uuid.uuid4().hex[:10]}"
    return f"x-{uuid.uuid4().hex[:10]}"


def _product() -> dict[str, Any]:
    return {
        "sku": f"SKU-{uuid.uuid4().hex[:12]}",
        "name": "Kettle",
        "price": "9.99",
        "currency": "EUR",
        "status": "active",
    }


# Bodies that pass validation, so an authorization failure cannot hide behind a 422.
BODIES: dict[tuple[str, str], Callable[[], Any]] = {
    ("POST", "/api/v1/auth/password/change"): lambda: {
        "current_password": "correct horse battery staple",
        "new_password": "another long passphrase 42",
    },
    ("PATCH", "/api/v1/users/me"): lambda: {"display_name": "Mallory"},
    ("PATCH", "/api/v1/users/{user_id}"): lambda: {"role": "admin"},
    ("POST", "/api/v1/catalog/products"): _product,
    ("POST", "/api/v1/catalog/products/import"): lambda: [_product()],
    ("PATCH", "/api/v1/catalog/products/{product_id}"): lambda: {"name": "Pwned"},
    ("POST", "/api/v1/catalog/products/{product_id}/stock"): lambda: {"delta": -1},
    ("POST", "/api/v1/catalog/categories"): lambda: {
        "slug": f"c-{uuid.uuid4().hex[:8]}",
        "name": "C",
    },
    ("PATCH", "/api/v1/catalog/categories/{category_id}"): lambda: {"name": "Pwned"},
}
# Writes guarded by optimistic concurrency: a matching validator, so 428 cannot hide
# an authorization failure either.
IF_MATCH = {"If-Match": '"v1"'}


def body_for(op: Operation) -> Any:
    factory = BODIES.get(op.key)
    return factory() if factory else None


async def call(
    client: httpx.AsyncClient,
    op: Operation,
    headers: dict[str, str],
    values: dict[str, str] | None = None,
) -> httpx.Response:
    body = body_for(op)
    return await client.request(
        op.method,
        op.url(values),
        json=body,
        headers={**headers, **IF_MATCH} if op.method in ("PATCH", "PUT", "DELETE") else headers,
    )


def is_problem(response: httpx.Response, status: int) -> bool:
    return (
        response.status_code == status
        and response.headers.get("content-type", "").startswith("application/problem+json")
        and response.json().get("status") == status
    )
