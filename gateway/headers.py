"""Which headers cross the gateway: hop-by-hop ones never do, client-sent identity
headers never do, forwarding headers are set by us."""

from __future__ import annotations

from collections.abc import Iterable

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
    }
)
# Set by the gateway itself (or by aiohttp from the URL), never copied from the client.
_REQUEST_OWNED = frozenset(
    {
        b"host",
        b"x-request-id",
        b"x-forwarded-for",
        b"x-real-ip",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"forwarded",
        b"expect",
        b"x-session-id",
    }
)
# The gateway's server adds its own date/server; the gateway adds its own request id.
_RESPONSE_OWNED = frozenset({b"date", b"server", b"x-request-id"})


def _connection_named(headers: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    named: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            named.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return named


def _dropped(name: bytes, named: set[bytes]) -> bool:
    return name in HOP_BY_HOP or name in named or name.startswith(b"proxy-")


def request_headers(
    raw: Iterable[tuple[bytes, bytes]],
) -> tuple[list[tuple[str, str]], dict[bytes, bytes]]:
    """(headers to forward, the few originals the gateway needs: host, authorization,
    content-length).

    Repeated headers stay repeated and in order."""
    raw = list(raw)
    named = _connection_named(raw)
    out: list[tuple[str, str]] = []
    seen: dict[bytes, bytes] = {}
    for name, value in raw:
        name = name.lower()
        if name in (b"host", b"authorization", b"content-length"):
            seen[name] = value
        if _dropped(name, named) or name in _REQUEST_OWNED or name.startswith(b"x-user-"):
            continue
        out.append((name.decode("latin-1"), value.decode("latin-1")))
    return out, seen


def response_headers(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    raw = list(raw)
    named = _connection_named(raw)
    return [
        (name.lower(), value)
        for name, value in raw
        if not _dropped(name.lower(), named) and name.lower() not in _RESPONSE_OWNED
    ]
