"""The JWKS cache every verifier uses (gateway and services): keys already known keep
working while auth is down, an unknown kid triggers a refresh, and refreshes are rate
limited so a flood of made-up kids cannot hammer auth."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

from services.common.jwt import JwksCache
from tests.support.tokens import jwks


class Auth:
    """The auth service's JWKS endpoint as seen by a fetcher: up or down, with a count."""

    def __init__(self) -> None:
        self.up = True
        self.calls = 0

    async def fetch(self) -> Mapping[str, Any]:
        self.calls += 1
        if not self.up:
            raise aiohttp.ClientConnectionError("connection refused")
        return jwks()


async def test_cached_keys_survive_an_auth_outage_and_refreshes_are_rate_limited() -> None:
    auth = Auth()
    cache = JwksCache(auth.fetch, max_age=0.0, min_refresh_interval=3600)
    kid = jwks()["keys"][0]["kid"]
    assert (await cache.key(kid)) is not None
    assert auth.calls == 1

    auth.up = False
    # Stale (max_age 0) and auth down: the known key is still served.
    assert (await cache.key(kid)) is not None
    # A flood of unknown kids does not reach auth (one refresh per interval at most).
    for n in range(20):
        assert await cache.key(f"made-up-{n}") is None
    assert auth.calls == 1


async def test_unknown_kid_refreshes_and_a_failed_refresh_keeps_the_keys() -> None:
    auth = Auth()
    cache = JwksCache(auth.fetch, max_age=300, min_refresh_interval=0)
    kid = jwks()["keys"][0]["kid"]
    assert (await cache.key(kid)) is not None
    assert (await cache.key("rotated-in-later")) is None  # asked auth again
    assert auth.calls == 2
    auth.up = False
    assert (await cache.key("rotated-in-later")) is None
    assert auth.calls == 3
    assert (await cache.key(kid)) is not None  # the failed refresh dropped nothing
