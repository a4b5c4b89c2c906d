"""The gateway in front of the real services (gunicorn, 2 workers): routing, edge
auth with revocation after a logout, the merged OpenAPI document and its metrics."""

from __future__ import annotations

import uuid

import httpx
import pytest

from services import registry
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

PASSWORD = "e2e-Gateway-horse-battery-7"


def _login(gw: str) -> str:
    email = f"gw-{uuid.uuid4().hex[:12]}@example.com"
    registered = httpx.post(
        f"{gw}/api/v1/auth/register", json={"email": email, "password": PASSWORD}, timeout=10
    )
    assert registered.status_code == 202, registered.text
    login = httpx.post(
        f"{gw}/api/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=10
    )
    assert login.status_code == 200, login.text
    assert login.headers["cache-control"] == "no-store"
    return str(login.json()["access_token"])


def test_gateway_reports_every_upstream_ready(stack: Stack) -> None:
    ready = httpx.get(f"{stack.gateway_url}/readyz", timeout=5)
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert {"redis", *(f"upstream:{n}" for n in registry.names(api_only=True))} <= set(checks)
    assert set(checks.values()) == {"ok"}


def test_logout_is_enforced_at_the_edge(stack: Stack) -> None:
    gw = stack.gateway_url
    token = _login(gw)
    headers = {"Authorization": f"Bearer {token}", "X-User-Id": str(uuid.uuid4())}
    me = httpx.get(f"{gw}/api/v1/users/me", headers=headers, timeout=10)
    assert me.status_code in (200, 404), me.text  # the profile may still be on its way
    anonymous = httpx.get(f"{gw}/api/v1/users/me", timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    out = httpx.post(f"{gw}/api/v1/auth/logout", headers=headers, timeout=10)
    assert out.status_code == 204, out.text
    after = httpx.get(f"{gw}/api/v1/users/me", headers=headers, timeout=10)
    assert after.status_code == 401
    assert after.json()["detail"] == "token has been revoked"


def test_public_reads_and_merged_openapi(stack: Stack) -> None:
    gw = stack.gateway_url
    jwks = httpx.get(f"{gw}/.well-known/jwks.json", timeout=10)
    assert jwks.status_code == 200 and jwks.json()["keys"]
    products = httpx.get(f"{gw}/api/v1/catalog/products?limit=2", timeout=10)
    assert products.status_code == 200, products.text
    assert products.headers["x-content-type-options"] == "nosniff"
    doc = httpx.get(f"{gw}/openapi.json", timeout=10).json()
    assert doc["paths"]["/api/v1/auth/login"]["post"]["security"] == []
    assert doc["paths"]["/api/v1/users/me"]["get"]["security"] == [{"bearerAuth": []}]
    assert doc["paths"]["/api/v1/catalog/products"]["get"]["security"] == []
    metrics = httpx.get(f"{gw}/metrics", timeout=10).text
    assert 'gateway_upstream_responses_total{status_class="2xx",upstream="catalog"}' in metrics
    assert 'route="/api/v1/catalog/{path}"' in metrics
