"""HTTP helpers shared by the catalog routers: ETags, preconditions, bounded bodies."""

from __future__ import annotations

from fastapi import Request, Response

from services.common.errors import ProblemError

JSON = "application/json"


def json_response(
    body: bytes,
    *,
    status_code: int = 200,
    etag: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    all_headers = dict(headers or {})
    if etag:
        all_headers["ETag"] = etag
    return Response(body, status_code=status_code, media_type=JSON, headers=all_headers)


def _tags(header: str) -> list[str]:
    return [t.strip() for t in header.split(",") if t.strip()]


def not_modified(request: Request, etag: str) -> bool:
    """If-None-Match uses the weak comparison (RFC 9110 13.1.2)."""
    header = request.headers.get("if-none-match")
    if not header:
        return False
    return any(t == "*" or t.removeprefix("W/") == etag for t in _tags(header))


def expected_version(request: Request, *, required: bool) -> int | None:
    """The version an If-Match names: 428 when required and absent, 412 when unparseable.

    `*` matches any existing version (None); weak tags never match (strong comparison).
    """
    header = request.headers.get("if-match")
    if not header:
        if required:
            raise ProblemError(
                428,
                "Send If-Match with the ETag you read, to avoid lost updates.",
                type_="precondition-required",
            )
        return None
    tags = _tags(header)
    if "*" in tags:
        return None
    for tag in tags:
        if tag.startswith('"v') and tag.endswith('"') and tag[2:-1].isdigit() and len(tag) < 20:
            return int(tag[2:-1])
    raise ProblemError(412, "If-Match does not name a current version.", type_="stale-version")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past `limit` bytes (checked while streaming)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> ProblemError:
    return ProblemError(413, f"The body exceeds {limit} bytes.", type_="body-too-large")
