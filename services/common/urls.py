"""Validation of URLs that clients give us to show to others (avatars, product images).

The services store and echo these URLs and never fetch them (no server-side request
forgery surface). They are still checked: https only, a host, no credentials, and no
address of a private network, so one user cannot make another user's browser call
into that browser's own network (a router, localhost) through an image tag.

The host is the one a browser will connect to: the URL is parsed by Ada, the WHATWG URL
parser Node.js uses, so percent-encoded hosts (`127.0.0.%31`), IDNA mapping (full-width
digits, `ⓛocalhost`) and IPv4 number forms (`0x7f.1`, `2130706433`, `127.1`) reach the
check in the form the browser resolves. The value is stored as given.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

import ada_url
from pydantic import AfterValidator, Field

LOCAL_NAMES = ("localhost", "localhost.localdomain")


def _local_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global


def _local_host(host: str) -> bool:
    """`host` as the WHATWG parser serialises it: a lower-case ASCII name, a dotted-decimal
    IPv4 address, or a bracketed IPv6 address."""
    if host.startswith("["):
        return _local_address(ipaddress.IPv6Address(host[1:-1]))
    try:
        return _local_address(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    # A name is never resolved here (resolving would be an outbound call).
    name = host.rstrip(".")
    return name in LOCAL_NAMES or name.endswith(".localhost")


def check_public_https_url(value: str) -> str:
    """The value unchanged, or ValueError with a message safe to show the client."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must not contain whitespace or control characters")
    # A backslash is a "/" to a browser and data to an RFC 3986 parser: two clients would
    # disagree on the host ("https://a.example\@127.0.0.1/"), so refuse it outright.
    if "\\" in value:
        raise ValueError("must not contain a backslash")
    # Browsers also accept "https:host" and "https:///host"; only the plain form is stored.
    if value[:8].lower() != "https://" or value[8:9] in ("", "/"):
        raise ValueError("must be an https URL with a host and no credentials")
    try:
        url = ada_url.URL(value)
    except ValueError as exc:  # a host no browser would accept (bad IDN, "%00", 1.2.3.999)
        raise ValueError("must be an https URL with a valid host") from exc
    if url.protocol != "https:" or not url.hostname or url.username or url.password:
        raise ValueError("must be an https URL with a host and no credentials")
    if _local_host(url.hostname):
        raise ValueError("must not point to a private or local address")
    return value


# What check_public_https_url accepts, as far as a JSON Schema pattern (ECMA-262) can say
# it: https, a host with no credentials, no whitespace, control character or backslash.
# The description says the rest (no private or local host).
PATTERN = (
    r"^[Hh][Tt][Tt][Pp][Ss]://[^\s\\/?#@\u0000-\u001f\u007f]+"
    r"([/?#][^\s\\\u0000-\u001f\u007f]*)?$"
)

# A request field holding such a URL (avatars, product images); its schema states the rules.
PublicHttpsUrl = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2048,
        description="An https URL on a public host: no credentials, no private, loopback "
        "or link-local address and no localhost (checked on the host a browser would "
        "connect to). Stored and shown, never fetched by the server.",
        json_schema_extra={"format": "uri", "pattern": PATTERN},
        examples=["https://cdn.example.com/images/a.png"],
    ),
    AfterValidator(check_public_https_url),
]
