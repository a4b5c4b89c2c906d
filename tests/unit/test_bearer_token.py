"""The one reading of an Authorization header, shared by the services and the gateway."""

from __future__ import annotations

import pytest

from services.common.security import bearer_token


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),  # the scheme is case-insensitive (RFC 9110 11.1)
        ("Basic abc", None),
        ("Bearer ", None),
        ("Bearer", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token
