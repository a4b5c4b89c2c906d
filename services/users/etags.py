"""Entity tags from the row version: strong, one per representation (full or public view).

`If-None-Match` uses the weak comparison (RFC 9110 13.1.2), `If-Match` the strong one.
"""

from __future__ import annotations

import re

from services.common.errors import ProblemError

_TAG = re.compile(r'\s*(W/)?"([^"]*)"\s*')


def etag(version: int, public: bool = False) -> str:
    return f'"v{version}-public"' if public else f'"v{version}"'


def _tags(header: str) -> list[tuple[bool, str]]:
    """(weak, opaque) pairs of a list header; junk between tags is ignored."""
    return [(bool(m.group(1)), m.group(2)) for m in _TAG.finditer(header)]


def none_match(header: str | None, current: str) -> bool:
    """True when the client's copy is current (answer 304)."""
    if not header:
        return False
    if header.strip() == "*":
        return True
    wanted = current.strip('"')
    return any(opaque == wanted for _, opaque in _tags(header))


def if_match_versions(header: str | None, *, required: bool) -> list[int] | None:
    """Versions the client accepts (None: no precondition). Weak or unknown tags match
    nothing, so they lead to 412; a missing header where one is required is a 428."""
    if header is None or not header.strip():
        if required:
            raise ProblemError(
                428, "Send If-Match with the ETag you read.", type_="precondition-required"
            )
        return None
    if header.strip() == "*":
        return None
    versions = []
    for weak, opaque in _tags(header):
        if not weak and re.fullmatch(r"v[0-9]{1,9}", opaque):
            versions.append(int(opaque[1:]))
    return versions
