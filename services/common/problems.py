"""The registry of problem types (RFC 9457): each has one slug, one status and one title.

Call sites raise a registered type (`problems.NOT_FOUND("No such user.")`) instead of
writing a free-text `type_` and a status that may disagree with it elsewhere. The kit
registers the types every service shares; a service registers its own domain types in
its own module with `register(...)`, which refuses a slug already taken with another
status or title.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PROBLEM_BASE = "https://errors.shopstack.dev/"

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    408: "Request Timeout",
    409: "Conflict",
    412: "Precondition Failed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    428: "Precondition Required",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def title_for(status: int) -> str:
    return _TITLES.get(status, "Error")


class ProblemError(Exception):
    """Raise anywhere to answer with a problem+json body (rendered by services.common.errors).

    Prefer a registered ProblemType (`NOT_FOUND("No such user.")`) to a bare `type_`."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        type_: str | None = None,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or title_for(status))
        self.status = status
        self.detail = detail
        self.type = type_
        self.title = title or title_for(status)
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


@dataclass(frozen=True, slots=True)
class ProblemType:
    slug: str
    status: int
    title: str

    @property
    def uri(self) -> str:
        return PROBLEM_BASE + self.slug

    def __call__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> ProblemError:
        """The exception to raise for this type."""
        return ProblemError(
            self.status, detail, type_=self.slug, title=self.title, headers=headers, extra=extra
        )


REGISTRY: dict[str, ProblemType] = {}


def register(slug: str, status: int, title: str | None = None) -> ProblemType:
    """The problem type `slug`; registering the same definition twice returns the first."""
    problem = ProblemType(slug, status, title or title_for(status))
    known = REGISTRY.setdefault(slug, problem)
    if known != problem:
        raise ValueError(f"problem type {slug!r} is already registered as {known}")
    return known


# Shared by every service and the gateway.
VALIDATION = register("validation", 422)
INVALID_BODY = register("invalid-body", 400)
INVALID_TEXT = register("invalid-text", 422)
INVALID_CURSOR = register("invalid-cursor", 400)
NOT_FOUND = register("not-found", 404)
CONFLICT = register("conflict", 409)
STALE_VERSION = register("stale-version", 412)
PRECONDITION_REQUIRED = register("precondition-required", 428)
UNAUTHORIZED = register("unauthorized", 401)
FORBIDDEN = register("forbidden", 403)
ACCOUNT_DISABLED = register("account-disabled", 403)
BODY_TOO_LARGE = register("body-too-large", 413)
UNSUPPORTED_MEDIA_TYPE = register("unsupported-media-type", 415)
RATE_LIMITED = register("rate-limited", 429)
UNAVAILABLE = register("unavailable", 503)
OVERLOADED = register("overloaded", 503)


def not_found(what: str) -> ProblemError:
    """One answer for "never existed" and "deleted": no enumeration of past objects."""
    return NOT_FOUND(f"No such {what}.")


def stale(what: str = "resource") -> ProblemError:
    return STALE_VERSION(f"The {what} was changed since you read it; fetch it again.")


def precondition_required() -> ProblemError:
    return PRECONDITION_REQUIRED("Send If-Match with the ETag you read, to avoid lost updates.")


def unauthorized(detail: str, *, error: str | None = "invalid_token") -> ProblemError:
    """401 with the RFC 6750 challenge; `error=None` when no token was sent at all."""
    challenge = f'Bearer error="{error}"' if error else "Bearer"
    return UNAUTHORIZED(detail, headers={"WWW-Authenticate": challenge})


def body_too_large(limit: int) -> ProblemError:
    return BODY_TOO_LARGE(f"The request body is larger than {limit} bytes.")


def unavailable(detail: str, retry_after: float) -> ProblemError:
    return UNAVAILABLE(detail, headers={"Retry-After": f"{retry_after:g}"})
