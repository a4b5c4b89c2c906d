"""Every way of failing to reach PostgreSQL or Redis is an outage: 503 problem+json with
Retry-After, never a 500.

The faults are real sockets, not mocks: nothing listening (refused), a server that resets
the connection, one that accepts and never answers (timed out), and a name that does not
resolve (`.invalid`, RFC 6761), which is what a container being restarted looks like to
its neighbours: its DNS entry is gone until it runs again.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from services.common.db import create_engine
from services.common.errors import install_error_handlers
from services.common.redis import create_redis
from services.common.settings import CommonSettings
from tools.devstack.embedded import free_port


class _Server:
    """A TCP listener on loopback that either resets each connection or never answers."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port: int = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.mode == "reset":
                # SO_LINGER 0: close() sends RST instead of FIN.
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
            else:
                self.held.append(conn)  # silent: the client's timeout fires

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture(params=["refused", "unresolvable", "reset", "timed out"])
def address(request: pytest.FixtureRequest) -> Iterator[str]:
    """host:port of a server that cannot be reached in one of the four ways."""
    kind = request.param
    if kind == "refused":
        yield f"127.0.0.1:{free_port()}"
    elif kind == "unresolvable":
        yield "shopstack-db.invalid:5432"
    else:
        server = _Server("reset" if kind == "reset" else "silent")
        try:
            yield f"127.0.0.1:{server.port}"
        finally:
            server.close()


def _app(address: str) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    settings = CommonSettings(database_url=f"postgresql://app:pw@{address}/app")
    # A short connect timeout so the silent server costs half a second, not five.
    engine = create_engine(settings, connect_args={"timeout": 0.5})
    redis = create_redis(f"redis://{address}/0", 0.5)

    @app.get("/db")
    async def db() -> int:
        async with engine.connect() as conn:
            return int((await conn.execute(text("SELECT 1"))).scalar_one())

    @app.get("/redis")
    async def cache() -> bool:
        return bool(await redis.ping())

    return app


@pytest.mark.parametrize("path", ["/db", "/redis"])
async def test_an_unreachable_dependency_answers_503_with_retry_after(
    address: str, path: str
) -> None:
    transport = httpx.ASGITransport(app=_app(address), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get(path)
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["type"].endswith("/unavailable")


async def test_a_missing_file_is_still_a_bug() -> None:
    """OSError is now routed to the outage handler; one that is not about the network stays
    a 500 (with no internals in the body)."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/file")
    async def read() -> str:
        with open("/nonexistent/shopstack") as f:
            return f.read()

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/file")
    assert response.status_code == 500
    assert "nonexistent" not in response.text


async def test_a_cold_key_cache_while_the_jwks_cannot_be_fetched_is_a_503(
    infra: object,
) -> None:
    """A worker that has not fetched the JWKS yet (just started, or recycled) while auth or
    auth's database is down cannot tell a good token from a bad one: 503 to retry, not a
    401 that makes a client drop a good token (seen in tests/deploy/test_compose_up.py)."""
    import aiohttp

    from services.common.errors import ProblemError
    from services.common.jwt import JwksCache, TokenVerifier
    from services.common.redis import create_redis
    from services.common.security import authenticate_token
    from tests.support.tokens import AUDIENCE, ISSUER, jwks, mint

    auth_up = False

    async def fetch() -> dict[str, object]:
        if not auth_up:
            raise aiohttp.ClientConnectionError("auth is down")
        return jwks()

    verifier = TokenVerifier(
        JwksCache(fetch, min_refresh_interval=0), issuer=ISSUER, audience=AUDIENCE
    )
    redis = create_redis(os.environ["REDIS_URL"])
    token = mint()
    try:
        with pytest.raises(ProblemError) as refused:
            await authenticate_token(verifier, redis, token)
        assert refused.value.status == 503 and refused.value.headers["Retry-After"]
        auth_up = True
        principal = await authenticate_token(verifier, redis, token)
        assert principal.user_id
    finally:
        await redis.aclose()
