"""Validation of URLs that clients give us to show to others (avatars, product images).

The services store and echo these URLs and never fetch them (no server-side request
forgery surface). They are still checked: https only, a host, no credentials, and no
address of a private network, so one user cannot make another user's browser call
into that browser's own network (a router, localhost) through an image tag.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

LOCAL_NAMES = ("localhost", "localhost.localdomain")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")


def _browser_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address a browser reads in `host` (WHATWG URL: 1 to 4 parts, decimal, octal
    or hex, so "2130706433" and "0x7f.1" are 127.0.0.1), or None for a name."""
    parts = host.split(".")
    if not all(_NUMBER.fullmatch(p) for p in parts) or len(parts) > 4:
        return None
    numbers = [
        int(p[2:] or "0", 16) if p[:2].lower() == "0x" else int(p, 8 if p[0] == "0" else 10)
        for p in parts
    ]
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        return ipaddress.IPv4Address(0)  # not a valid address: refused like a local one
    return ipaddress.IPv4Address(sum(n << (8 * (3 - i)) for i, n in enumerate(head)) + last)


def _local_host(host: str) -> bool:
    host = host.rstrip(".").lower()
    if host in LOCAL_NAMES or host.endswith(".localhost"):
        return True
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = _browser_ipv4(host)
    # A name is never resolved here (resolving would be an outbound call).
    return address is not None and not address.is_global


def check_public_https_url(value: str) -> str:
    """The value unchanged, or ValueError with a message safe to show the client."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must not contain whitespace or control characters")
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise ValueError("must be an https URL") from exc
    if parts.scheme != "https" or not host or parts.username or parts.password:
        raise ValueError("must be an https URL with a host and no credentials")
    if _local_host(host):
        raise ValueError("must not point to a private or local address")
    return value
