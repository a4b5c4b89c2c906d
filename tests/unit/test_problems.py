"""The problem type registry: one status and title per type, refused when redefined."""

from __future__ import annotations

import pytest

from services.common import problems
from services.common.errors import problem_body


def test_a_registered_type_builds_its_error_with_status_title_and_uri() -> None:
    error = problems.NOT_FOUND("No such thing.")
    assert (error.status, error.type, error.title, error.detail) == (
        404,
        "not-found",
        "Not Found",
        "No such thing.",
    )
    body = problem_body(error.status, detail=error.detail, type_=error.type)
    assert body["type"] == problems.NOT_FOUND.uri == "https://errors.shopstack.dev/not-found"


def test_registering_the_same_definition_twice_returns_it_and_a_clash_is_refused() -> None:
    assert problems.register("not-found", 404) is problems.NOT_FOUND
    with pytest.raises(ValueError, match="already registered"):
        problems.register("not-found", 410)


def test_every_registered_type_has_a_known_status_and_a_title() -> None:
    for slug, problem in problems.REGISTRY.items():
        assert problem.slug == slug and 400 <= problem.status < 600
        assert problem.title and problem.title != "Error", slug


def test_builders_carry_the_headers_the_status_needs() -> None:
    missing = problems.unauthorized("A bearer access token is required.", error=None)
    invalid = problems.unauthorized("bad signature")
    assert missing.headers == {"WWW-Authenticate": "Bearer"}
    assert invalid.headers == {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    assert problems.body_too_large(10).status == 413
    assert problems.unavailable("later", 2).headers == {"Retry-After": "2"}
    assert problems.stale("profile").status == 412
