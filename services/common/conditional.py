"""Entity tags and conditional requests (RFC 9110 8.8.3, 13.1), one reading for every service.

A resource's ETag is built from its row version: `"v7"`, or `"v7-public"` for a second
representation of the same row. `If-Match` and `If-None-Match` are lists (`"v1", "v2"`),
may be `*`, and may carry weak tags (`W/"v1"`): If-Match uses the strong comparison (a
weak tag never matches), If-None-Match the weak one.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from services.common import problems

# entity-tag = [ weak ] opaque-tag; opaque-tag = DQUOTE *etagc DQUOTE (etagc excludes DQUOTE,
# so a comma inside the quotes belongs to the tag, not the list).
_TAG = re.compile(r'\s*(W/)?"([^"]*)"\s*')
_VERSION = re.compile(r"v([0-9]{1,9})")


@dataclass(frozen=True, slots=True)
class EntityTag:
    opaque: str
    weak: bool = False


def etag(version: int, variant: str | None = None) -> str:
    return f'"v{version}-{variant}"' if variant else f'"v{version}"'


def parse_tags(header: str) -> list[EntityTag]:
    """The entity tags of a list header; anything between tags that is not one is ignored."""
    return [EntityTag(m.group(2), bool(m.group(1))) for m in _TAG.finditer(header)]


def _is_star(header: str) -> bool:
    return header.strip() == "*"


# The documented answer of every GET that honours If-None-Match (OpenAPI `responses`).
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: If-None-Match names the current ETag (or is *)"}
}


def none_match(header: str | None, current: str) -> bool:
    """True when If-None-Match names the current ETag (weak comparison): answer 304."""
    if not header:
        return False
    if _is_star(header):
        return True
    wanted = current.removeprefix("W/").strip('"')
    return any(tag.opaque == wanted for tag in parse_tags(header))


def if_match_versions(header: str | None, *, required: bool) -> list[int] | None:
    """The row versions an If-Match accepts; None when there is no precondition (absent,
    or `*` on an existing row). Weak and foreign tags accept nothing, so they end in 412;
    an absent header where one is required is a 428."""
    if header is None or not header.strip():
        if required:
            raise problems.precondition_required()
        return None
    if _is_star(header):
        return None
    return [
        int(match.group(1))
        for tag in parse_tags(header)
        if not tag.weak and (match := _VERSION.fullmatch(tag.opaque))
    ]


def check_version(versions: Collection[int] | None, current: int, *, what: str) -> None:
    """412 unless the row's current version is one the client accepted."""
    if versions is not None and current not in versions:
        raise problems.stale(what)
