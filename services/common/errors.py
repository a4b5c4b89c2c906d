"""RFC 9457 problem+json errors: one shape from every service and from the gateway."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_params_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.common.context import request_id_var
from services.common.outage import OUTAGE_ERRORS, RETRY_AFTER_SECONDS, unavailable_dependency
from services.common.problems import (
    INVALID_BODY,
    PROBLEM_BASE,
    UNAVAILABLE,
    VALIDATION,
    ProblemError,
    title_for,
)

__all__ = ["PROBLEM_MEDIA_TYPE", "ProblemError", "problem_body", "problem_response", "title_for"]

PROBLEM_MEDIA_TYPE = "application/problem+json"

log = logging.getLogger("services.errors")


def problem_body(
    status: int,
    *,
    detail: str | None = None,
    type_: str | None = None,
    title: str | None = None,
    instance: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + type_ if type_ else "about:blank",
        "title": title or title_for(status),
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    request_id = request_id_var.get()
    if request_id:
        body["request_id"] = request_id
    if extra:
        body.update(extra)
    return body


def problem_response(
    status: int,
    *,
    detail: str | None = None,
    type_: str | None = None,
    title: str | None = None,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    body = problem_body(
        status, detail=detail, type_=type_, title=title, instance=instance, extra=extra
    )
    return JSONResponse(
        body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_MEDIA_TYPE
    )


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        errors.append(
            {"field": ".".join(loc), "message": err.get("msg", ""), "code": err.get("type", "")}
        )
    return errors


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(
        exc.status,
        detail=exc.detail,
        type_=exc.type,
        title=exc.title,
        instance=request.url.path,
        headers=exc.headers,
        extra=exc.extra,
    )


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"No resource at {request.url.path}"
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        # Starlette names only the first route that matched the path; a resource
        # served by several routes (GET, PATCH, DELETE /users/me) allows them all.
        headers["Allow"] = ", ".join(allowed_methods(request))
    return problem_response(
        exc.status_code,
        detail=detail,
        instance=request.url.path,
        headers=headers,
    )


def _serves(route: Any, params: dict[str, str]) -> bool:
    """Whether the route takes the values its path parameters get from this path: a
    literal path next to a template (/products/import, /products/{product_id}) matches
    both regexes, but "import" is no product id, so that path has only its own methods."""
    dependant = getattr(route, "dependant", None)
    if dependant is None or not params:
        return True
    return not request_params_to_args(list(_path_params(dependant)), params)[1]


def _path_params(dependant: Dependant) -> Iterator[Any]:
    yield from dependant.path_params
    for sub in dependant.dependencies:
        yield from _path_params(sub)


def allowed_methods(request: Request) -> list[str]:
    path = request.url.path
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        regex = getattr(route, "path_regex", None)
        allows = route.methods
        match = regex.match(path) if allows and regex is not None else None
        if allows and match is not None and _serves(route, match.groupdict()):
            methods |= allows
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return problem_response(
        422,
        detail="The request is not valid.",
        type_=VALIDATION.slug,
        instance=request.url.path,
        extra={"errors": _validation_errors(exc)},
    )


async def _on_outage(request: Request, exc: Exception) -> JSONResponse:
    dependency = unavailable_dependency(exc)
    if dependency is None:  # a DBAPIError that is a bug, not an outage
        return await _on_unhandled(request, exc)
    log.warning(
        "dependency unavailable: %s (%s)",
        dependency,
        type(exc).__name__,
        extra={"path": request.url.path},
    )
    return problem_response(
        503,
        detail="The service is temporarily unavailable; try again shortly.",
        type_=UNAVAILABLE.slug,
        instance=request.url.path,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _on_unhandled(request: Request, exc: Exception) -> JSONResponse:
    # Logged with its traceback for operators; the client sees no internals.
    log.exception("unhandled error", extra={"path": request.url.path})
    return problem_response(500, detail="An unexpected error occurred.", instance=request.url.path)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(RequestValidationError, _on_validation)
    for error in OUTAGE_ERRORS:
        app.add_exception_handler(error, _on_outage)
    app.add_exception_handler(Exception, _on_unhandled)


def parse_json_body(raw: bytes | str) -> Any:
    """A request body read as JSON by a route that parses it itself; anything that is not
    JSON a client may send, including nesting deep enough to exhaust the parser's recursion
    (`[[[[...`), is a 400 problem, never a 500 (FastAPI's own body parsing answers 400 too)."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise INVALID_BODY("The body is not valid JSON.") from None
