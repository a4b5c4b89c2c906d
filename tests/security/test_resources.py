"""API4 unrestricted resource consumption, in-process: every list caps its page size,
every string and array a client sends is bounded.

Elsewhere: body size at the gateway (tests/integration/gateway/test_forwarding.py::
test_body_limit_declared_and_streamed, and through gunicorn in
tests/e2e/test_security_e2e.py), import size (tests/integration/catalog/test_import.py::
test_bad_bodies_are_4xx), rate limits with Retry-After (tests/integration/gateway/
test_ratelimit.py, tests/integration/auth/test_ratelimit.py), slow bodies
(tests/e2e/test_security_e2e.py::test_slow_body_is_cut_off_and_others_are_served)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.auth.support import PASSWORD
from tests.security.support import clients, is_problem, operations
from tests.security.test_properties import _request_schemas, _resolve
from tests.support.tokens import bearer, mint

pytestmark = pytest.mark.usefixtures("infra")

MAX_PAGE = 100
# Strings bounded by their format or shape instead of maxLength.
BOUNDED_FORMATS = {"email", "uuid", "date-time"}
# Exact decimals travel as strings, bounded by max_digits (asked below, not shown).
DECIMALS = {"price", "min_price", "max_price"}


async def test_every_list_caps_its_page_size() -> None:
    lists = []
    admin = bearer(mint(role="admin"))
    async with clients() as apps:
        for service, (app, client) in apps.items():
            for op in operations(service, app):
                if op.method != "GET" or "limit" not in op.query_names():
                    continue
                limit = op.query_param("limit")
                maximum = limit.get("maximum")
                assert maximum is not None and maximum <= MAX_PAGE, (str(op), limit)
                over = await client.get(op.url(), params={"limit": maximum + 1}, headers=admin)
                at_cap = await client.get(op.url(), params={"limit": maximum}, headers=admin)
                assert is_problem(over, 422), str(op)
                assert at_cap.status_code == 200, (str(op), at_cap.text)
                assert len(at_cap.json()["items"]) <= maximum
                cursor = op.query_param("cursor")
                bounded = [cursor, *cursor.get("anyOf", [])]
                assert any("maxLength" in s for s in bounded), (str(op), cursor)
                lists.append(op.key)
    assert len(lists) >= 3


def _unbounded(doc: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    out = []
    for option in schema.get("anyOf", [schema]):
        option = _resolve(doc, option)
        kind = option.get("type")
        if kind == "array" and "maxItems" not in option:
            out.append("array without maxItems")
        if kind == "string" and not (
            "maxLength" in option
            or "pattern" in option
            or "enum" in option
            or "const" in option
            or option.get("format") in BOUNDED_FORMATS
        ):
            out.append("string without maxLength")
    return out


async def test_every_string_and_array_in_a_request_is_bounded() -> None:
    async with clients() as apps:
        for service, (app, _) in apps.items():
            doc = app.openapi()
            for op in operations(service, app):
                for schema in _request_schemas(op, doc):
                    for name, prop in schema.get("properties", {}).items():
                        if name not in DECIMALS:
                            problems = _unbounded(doc, _resolve(doc, prop))
                            assert not problems, (str(op), name, problems)
                for param in op.spec.get("parameters", []):
                    if param["in"] == "header" or param["name"] in DECIMALS:
                        continue  # bounded by the HTTP server's header size limit
                    schema = param.get("schema", {})
                    assert not _unbounded(doc, schema), (str(op), param["name"])
        # What the schema cannot show, checked by asking: huge emails and prices.
        _, auth = apps["auth"]
        _, catalog = apps["catalog"]
        long_email = "a" * 300 + "@example.com"
        for path in ("/api/v1/auth/register", "/api/v1/auth/password/forgot"):
            response = await auth.post(path, json={"email": long_email, "password": PASSWORD})
            assert is_problem(response, 422), path
        huge = await catalog.post(
            "/api/v1/catalog/products",
            json={"sku": "S-1", "name": "n", "price": "9" * 400, "currency": "EUR"},
            headers=bearer(mint(role="admin")),
        )
        assert is_problem(huge, 422)
        listed = await catalog.get("/api/v1/catalog/products", params={"min_price": "9" * 400})
        assert is_problem(listed, 422)
