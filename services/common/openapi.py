"""Every operation documents the problem+json errors it can answer with, in one place.

Routes declare only what is special to them (`responses={412: ...}`); the errors every
route shares follow from what the operation is (protected, has a path parameter, a
body, ...) and are added here, to each service's document and, with the gateway's own
(401 at the edge, 502/504 upstream), to the merged one. Every error status, declared
here or on the route, is `application/problem+json` with the `Problem` schema.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from services.common.errors import PROBLEM_MEDIA_TYPE, title_for
from services.common.security import get_optional_principal, get_principal, require_admin

# An operationId: `<service>.<lowerCamelCase name=>`; a function's default (snake_case)
# name does not match, so a route without `name=` is caught by tests/contract.
OPERATION_ID = re.compile(r"[a-z][a-z0-9_]*\.[a-z][A-Za-z0-9]*")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
MUTATING = frozenset({"post", "put", "patch", "delete"})
PROBLEM_REF = "#/components/schemas/Problem"

# RFC 9457 plus our extensions (request_id; errors on a 422).
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                    "code": {"type": "string"},  # request validation
                    "row": {"type": "integer"},  # catalog import: the file's row
                },
            },
        },
    },
    "additionalProperties": True,
}

DESCRIPTIONS = {
    400: "Malformed request: body not JSON, bad cursor or token, bad header",
    401: "Missing, invalid, expired or revoked access token",
    403: "Signed in, but not allowed (role, disabled account)",
    404: "No such resource",
    409: "Conflicts with the current state (duplicate, still in use)",
    412: "If-Match does not match the current ETag",
    413: "Body larger than the limit",
    415: "Unsupported Content-Type",
    422: "Invalid parameters or body (`errors` lists each)",
    428: "If-Match required",
    429: "Too many requests (Retry-After)",
    502: "Upstream service failed",
    503: "A dependency (database, Redis, upstream) is unavailable (Retry-After)",
    504: "Upstream service timed out",
}

# (method, path, operation) -> whether it needs a signed-in caller
Protected = Callable[[str, str, dict[str, Any]], bool]
# (method, path, operation, protected) -> the shared error statuses it may answer
Statuses = Callable[[str, str, dict[str, Any], bool], set[int]]


def operation_ids(service: str) -> Callable[[APIRoute], str]:
    """FastAPI's `generate_unique_id_function` for `service`: the operationId of a route
    is `<service>.<name>`, from the route's explicit `name=` (`catalog.listProducts`).

    Generated clients name their methods after it, so it is a public contract: it must
    not change when a handler function is renamed, hence an explicit lowerCamelCase
    `name=` on every route and not the function's name. tests/contract holds every id
    of the merged document stable and refuses one that is not `<service>.<camelCase>`.
    """

    def unique_id(route: APIRoute) -> str:
        return f"{service}.{route.name}"

    return unique_id


def humanise_summaries(doc: dict[str, Any]) -> dict[str, Any]:
    """FastAPI makes a missing summary from the route's name (`verifyEmail` ->
    "Verifyemail"); say it in words instead ("Verify email"). In place."""
    for _, _, operation in _operations(doc):
        name = str(operation.get("operationId", "")).rpartition(".")[2]
        if name and operation.get("summary") == name.replace("_", " ").title():
            words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).lower()
            operation["summary"] = words[:1].upper() + words[1:]
    return doc


def problem_content() -> dict[str, Any]:
    return {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}}


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in (doc.get("paths") or {}).items():
        for method in HTTP_METHODS:
            operation = item.get(method)
            if isinstance(operation, dict):
                yield method, path, operation


def service_statuses(
    method: str, path: str, operation: dict[str, Any], protected: bool
) -> set[int]:
    """What any service route may answer besides its own declared statuses."""
    params = operation.get("parameters") or []
    has_body = "requestBody" in operation
    statuses = {503}  # database or Redis out: fail fast with Retry-After
    if params or has_body:
        statuses |= {400, 422}
    if protected:
        statuses |= {401, 403}
    if any(p.get("in") == "path" for p in params):
        statuses.add(404)
    if protected and method in MUTATING:
        statuses.add(409)
    return statuses


def gateway_statuses(
    method: str, path: str, operation: dict[str, Any], protected: bool
) -> set[int]:
    """What the gateway adds in front of every upstream route: a token is verified on
    every route (an invalid one is a 401 even on a public route), rate limits, body
    limit, a malformed request line or header, upstream failures."""
    statuses = {400, 401, 429, 502, 503, 504}
    if protected:
        statuses.add(403)
    if "requestBody" in operation:
        statuses.add(413)
    return statuses


def document_problems(
    doc: dict[str, Any],
    protected: Protected,
    statuses: Statuses = service_statuses,
) -> dict[str, Any]:
    """Add the shared error responses to every operation of `doc` (in place, idempotent)
    and make every error response problem+json."""
    doc.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for method, path, operation in _operations(doc):
        responses: dict[str, Any] = operation.setdefault("responses", {})
        wanted = statuses(method, path, operation, protected(method, path, operation))
        for status in wanted:
            responses.setdefault(str(status), {})
        for code, response in responses.items():
            if code.isdigit() and int(code) >= 400:
                response["description"] = response.get("description") or DESCRIPTIONS.get(
                    int(code), title_for(int(code))
                )
                if response["description"] == "Validation Error":  # FastAPI's default 422
                    response["description"] = DESCRIPTIONS[422]
                if _default_content(response.get("content")):
                    response["content"] = problem_content()
    return doc


def _default_content(content: dict[str, Any] | None) -> bool:
    """Nothing declared, or FastAPI's own 422 (`HTTPValidationError`, which our handler
    never sends): a route that declares a body of its own keeps it (/readyz)."""
    if not content:
        return True
    schema = (content.get("application/json") or {}).get("schema") or {}
    return bool(str(schema.get("$ref", "")).endswith("/HTTPValidationError"))


def _needs_principal(dependant: Dependant) -> bool:
    return any(
        dep.call in (get_principal, require_admin) or _needs_principal(dep)
        for dep in dependant.dependencies
    )


def _reads_principal(dependant: Dependant) -> bool:
    return any(
        dep.call is get_optional_principal or _reads_principal(dep)
        for dep in dependant.dependencies
    )


def _route_keys(routes: Sequence[Any], check: Callable[[Dependant], bool]) -> set[tuple[str, str]]:
    # Route contexts: included routers' routes with their effective dependencies.
    return {
        (method.lower(), ctx.path_format or "")
        for ctx in iter_route_contexts(routes)
        if isinstance(ctx.original_route, APIRoute) and check(ctx.dependant)
        for method in ctx.methods or ()
    }


def install_problem_docs(app: FastAPI) -> None:
    """Make `app.openapi()` document the shared problem responses of every route."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = humanise_summaries(generate())
            protected = _route_keys(app.routes, _needs_principal)
            # An optional principal still rejects an invalid token with a 401.
            token_read = _route_keys(app.routes, _reads_principal)

            def statuses(method: str, path: str, op: dict[str, Any], protected: bool) -> set[int]:
                found = service_statuses(method, path, op, protected)
                return found | {401} if (method, path) in token_read else found

            document_problems(doc, lambda m, p, _: (m, p) in protected, statuses)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
