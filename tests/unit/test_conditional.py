"""RFC 9110 conditional requests, read one way by every service (no servers needed)."""

from __future__ import annotations

import pytest

from services.common.conditional import (
    EntityTag,
    check_version,
    etag,
    if_match_versions,
    none_match,
    parse_tags,
)
from services.common.problems import ProblemError


def test_etags_name_the_version_and_the_representation() -> None:
    assert etag(3) == '"v3"'
    assert etag(3, "public") == '"v3-public"'


def test_a_list_header_yields_every_tag_weak_or_strong() -> None:
    assert parse_tags('"v1", W/"v2" ,"a,b"') == [
        EntityTag("v1"),
        EntityTag("v2", weak=True),
        EntityTag("a,b"),  # a comma inside the quotes belongs to the tag
    ]
    assert parse_tags("v1, junk") == []


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('"v1", "v2"', [1, 2]),  # any of the listed versions passes, not only the first
        ('"v2"', [2]),
        ('W/"v2"', []),  # strong comparison: a weak tag never matches
        ('"v2-public"', []),  # the public view's tag is no version to write against
        ('"x", "v7"', [7]),
        ('"v1234567890"', []),  # past nine digits: not one of our versions
        ("*", None),
        (None, None),
        ("  ", None),
    ],
)
def test_if_match_lists_the_versions_it_accepts(header: str | None, expected: object) -> None:
    assert if_match_versions(header, required=False) == expected


def test_if_match_where_required_is_a_428_when_absent() -> None:
    with pytest.raises(ProblemError) as caught:
        if_match_versions(None, required=True)
    assert caught.value.status == 428 and caught.value.type == "precondition-required"
    assert if_match_versions("*", required=True) is None


def test_a_row_at_version_2_passes_if_match_v1_v2_and_fails_v1() -> None:
    check_version(if_match_versions('"v1", "v2"', required=True), 2, what="profile")
    check_version(None, 2, what="profile")
    with pytest.raises(ProblemError) as caught:
        check_version(if_match_versions('"v1"', required=True), 2, what="profile")
    assert caught.value.status == 412 and caught.value.type == "stale-version"
    assert "profile" in (caught.value.detail or "")


@pytest.mark.parametrize(
    ("header", "current", "expected"),
    [
        ('"v3"', '"v3"', True),
        ('W/"v3"', '"v3"', True),  # weak comparison
        ('"v1", "v3"', '"v3"', True),
        ('"v3"', '"v3-public"', False),
        ("*", '"v3"', True),
        ('"v2"', '"v3"', False),
        (None, '"v3"', False),
        ("", '"v3"', False),
    ],
)
def test_if_none_match_uses_the_weak_comparison(
    header: str | None, current: str, expected: bool
) -> None:
    assert none_match(header, current) is expected
