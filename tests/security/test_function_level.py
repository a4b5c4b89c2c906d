"""API5 (function-level authorization) and API9 (inventory), driven by each service's
own OpenAPI document: a route added later is checked without editing these tests.

Each service is attacked directly, without the gateway in front (defence in depth:
the edge is checked the same way in tests/e2e/test_security_e2e.py)."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from tests.security.support import (
    SERVICES,
    USER_OPERATIONS,
    call,
    clients,
    flat_routes,
    is_problem,
    operations,
    routed,
)
from tests.support.tokens import bearer, mint

pytestmark = pytest.mark.usefixtures("infra")


async def test_every_protected_operation_refuses_anonymous_callers() -> None:
    checked = []
    async with clients() as apps:
        for service, (app, client) in apps.items():
            for op in operations(service, app):
                if op.public:
                    continue
                response = await call(client, op, {})
                assert is_problem(response, 401), (str(op), response.text)
                assert response.headers["www-authenticate"].startswith("Bearer"), str(op)
                checked.append(op.key)
    assert len(checked) >= 15  # the sweep saw the routes (it fails if the docs vanish)


async def test_every_admin_operation_refuses_plain_users() -> None:
    """Protected and not on the user list = admin only: 403 before any lookup."""
    user = bearer(mint(role="user"))
    admin_ops = []
    async with clients() as apps:
        for service, (app, client) in apps.items():
            for op in operations(service, app):
                if op.public or op.key in USER_OPERATIONS:
                    continue
                response = await call(client, op, user)
                assert is_problem(response, 403), (str(op), response.text)
                admin_ops.append(op.key)
    assert ("GET", "/api/v1/users") in admin_ops
    assert ("POST", "/api/v1/catalog/products/import") in admin_ops
    assert ("PATCH", "/api/v1/users/{user_id}") in admin_ops
    # The user list names only real routes (no stale entry hides a renamed one).
    async with clients() as apps:
        every = {op.key for s, (app, _) in apps.items() for op in operations(s, app)}
    assert USER_OPERATIONS <= every


async def test_role_claim_is_exact_not_a_prefix_or_case_variant() -> None:
    async with clients("users") as apps:
        _, client = apps["users"]
        for role in ("Admin", "ADMIN", "admin ", "administrator", "root", "", "user,admin"):
            response = await client.get("/api/v1/users", headers=bearer(mint(role=role)))
            assert response.status_code in (401, 403), role
        ok = await client.get("/api/v1/users", headers=bearer(mint(role="admin")))
        assert ok.status_code == 200


async def test_every_routed_route_is_documented() -> None:
    """API9: nothing reachable through the gateway is missing from the OpenAPI (no
    hidden debug or internal endpoint behind a routed prefix)."""
    async with clients() as apps:
        for service, (app, _) in apps.items():
            documented = {op.key for op in operations(service, app)}
            seen = 0
            for path, route in flat_routes(app.routes):
                seen += 1
                if not routed(service, path):
                    continue
                assert not isinstance(route, Mount), f"{service} mounts {path} under a prefix"
                assert isinstance(route, APIRoute | Route), (service, path)
                methods = (getattr(route, "methods", None) or {"GET"}) - {"HEAD", "OPTIONS"}
                for method in methods:
                    assert (method, path) in documented, f"{service}: {method} {path} undocumented"
            assert seen >= 6, (service, seen)  # the walk reached the routers
    assert set(SERVICES) == set(apps)
