"""Operation ids are a public contract: generated clients name their methods after them.

The merged document the gateway would serve, built in process from the apps, must
keep every (method, path) -> operationId of the committed snapshot; the live gateway's
document is compared with the same snapshot in tests/e2e/test_openapi_contract.py.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastapi import APIRouter

from gateway.openapi import build_in_process
from services import registry
from services.common.app import ServiceSpec, create_app
from services.common.settings import CommonSettings
from tests.contract.snapshot import load, operation_ids, problems


@pytest.fixture(scope="module")
def merged() -> dict[str, Any]:
    return build_in_process()


def test_every_operation_id_is_as_the_snapshot_says(merged: dict[str, Any]) -> None:
    found = problems(merged, load())
    assert not found, "\n".join(found)


def test_ids_are_service_dot_name_unique_and_readable(merged: dict[str, Any]) -> None:
    ids = operation_ids(merged)
    assert ids["GET /api/v1/catalog/products"] == "catalog.listProducts"
    assert ids["POST /api/v1/auth/login"] == "auth.login"
    assert ids["GET /api/v1/users/me"] == "users.getMe"
    assert len(set(ids.values())) == len(ids)
    assert {i.split(".")[0] for i in ids.values()} == {*registry.names(api_only=True), "gateway"}
    assert [t["name"] for t in merged["tags"]] == [*registry.names(api_only=True), "health"]
    summaries = {
        op["operationId"]: op["summary"]
        for item in merged["paths"].values()
        for op in item.values()
    }
    assert summaries["auth.verifyEmail"] == "Verify email"  # not FastAPI's "Verifyemail"


def test_a_renamed_or_removed_id_is_called_a_breaking_change(merged: dict[str, Any]) -> None:
    renamed = copy.deepcopy(merged)
    renamed["paths"]["/api/v1/catalog/products"]["get"]["operationId"] = "catalog.products"
    del renamed["paths"]["/api/v1/auth/logout"]
    found = problems(renamed, load())
    assert any(
        "GET /api/v1/catalog/products: operationId 'catalog.listProducts' became "
        "'catalog.products': a breaking change" in p
        for p in found
    ), found
    assert any(
        "POST /api/v1/auth/logout (auth.logout) is gone: a breaking change" in p for p in found
    ), found


def test_a_route_without_an_explicit_name_is_caught() -> None:
    """The app factory derives `<service>.<name>`; a route that relies on its function's
    name gets a snake_case id, which the contract check refuses."""
    router = APIRouter(tags=["things"])

    @router.get("/api/v1/things")
    async def list_things() -> list[str]:
        return []

    @router.get("/api/v1/things/{thing_id}", name="getThing")
    async def read_one(thing_id: int) -> int:
        return thing_id

    app = create_app(
        ServiceSpec(name="things", settings=CommonSettings(), routers=[router], use_database=False)
    )
    ids = operation_ids(app.openapi())
    assert ids["GET /api/v1/things/{thing_id}"] == "things.getThing"  # not the function's
    assert ids["GET /api/v1/things"] == "things.list_things"
    found = problems(app.openapi(), {k: v for k, v in ids.items() if "/api/" in k})
    assert any("give the route an explicit name=" in p and "list_things" in p for p in found)
    assert not any("getThing" in p for p in found)


def test_every_conditional_get_documents_its_304(merged: dict[str, Any]) -> None:
    # Found by the fuzzer: GET /users/me answered 304 to `If-None-Match: *` undocumented.
    conditional = [
        f"GET {path}"
        for path, item in merged["paths"].items()
        if any(p.get("name") == "If-None-Match" for p in item.get("get", {}).get("parameters", []))
    ]
    assert "GET /api/v1/users/me" in conditional
    undocumented = [
        name
        for name in conditional
        if "304" not in merged["paths"][name.removeprefix("GET ")]["get"]["responses"]
    ]
    assert not undocumented, undocumented
    for path in (
        "/api/v1/catalog/products/{product_id}",
        "/api/v1/catalog/categories/{category_id}",
    ):
        assert "304" in merged["paths"][path]["get"]["responses"]  # If-None-Match read by hand
