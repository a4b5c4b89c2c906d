"""Security through the real gateway under gunicorn, driven by its merged OpenAPI:
object-level (API1) and function-level (API5) authorization of every operation,
resource limits (API4: body size, slow clients), misconfiguration (API8: headers,
CORS, banners), inventory (API9: unknown routes).

Accounts are seeded with the operator code path (no registration: the per-address
registration limit is shared by every e2e test); they log in through the gateway."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from services.auth.models import Account, Outbox
from services.auth.passwords import PasswordHasher
from services.common.db import asyncpg_url, session_factory
from services.common.outbox import add_event
from tests.e2e.conftest import Stack
from tests.security.support import BODIES, IF_MATCH, USER_OPERATIONS, fill
from tools.devstack.embedded import free_port
from tools.devstack.processes import Supervisor
from tools.devstack.stack import process_spec

pytestmark = pytest.mark.e2e

PASSWORD = "e2e-Security-horse-battery-3"
TIMEOUT = 10.0
SLOW_BODY_SECONDS = 1.0
ALLOWED_ORIGIN = "https://app.example.com"
PUBLIC_VIEW = {"id", "display_name", "avatar_url"}


@dataclass
class Person:
    id: str
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def session_id(self) -> str:
        from jose import jwt

        return str(jwt.get_unverified_claims(self.token)["sid"])


def _seed(stack: Stack, email: str) -> str:
    """A verified plain user, as an operator would create one (same event as register)."""

    async def run() -> str:
        engine = create_async_engine(asyncpg_url(stack.config.database_url))
        hasher = PasswordHasher(memory_kib=1024, time_cost=1, parallelism=1)
        moment = datetime.now(UTC)
        try:
            async with session_factory(engine)() as session, session.begin():
                account = Account(
                    email=email,
                    password_hash=await hasher.hash(PASSWORD),
                    role="user",
                    email_verified=True,
                    created_at=moment,
                    updated_at=moment,
                )
                session.add(account)
                data = {"user_id": str(account.id), "email": email, "role": "user"}
                add_event(
                    session, Outbox, "user.registered", data | {"created_at": moment.isoformat()}
                )
            return str(account.id)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _login(gw: str, email: str) -> str:
    """Logs in, waiting out a shared per-address limit if the suite has used it up."""
    deadline = time.monotonic() + 70
    while True:
        response = httpx.post(
            f"{gw}/api/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=TIMEOUT
        )
        if response.status_code != 429 or time.monotonic() > deadline:
            break
        time.sleep(min(float(response.headers.get("retry-after", "1")), 10))
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _person(stack: Stack) -> Person:
    email = f"sec-{uuid.uuid4().hex[:12]}@example.com"
    user_id = _seed(stack, email)
    person = Person(user_id, email, _login(stack.gateway_url, email))
    for _ in range(100):  # the profile arrives with the user.registered event
        me = httpx.get(f"{stack.gateway_url}/api/v1/users/me", headers=person.headers)
        if me.status_code == 200:
            return person
        time.sleep(0.1)
    raise AssertionError(f"no profile for {email}: {me.text}")


@pytest.fixture(scope="module")
def people(stack: Stack) -> tuple[Person, Person]:
    return _person(stack), _person(stack)


@pytest.fixture(scope="module")
def operations(stack: Stack) -> list[tuple[str, str, dict[str, Any]]]:
    doc = httpx.get(f"{stack.gateway_url}/openapi.json", timeout=TIMEOUT).json()
    ops = [
        (method.upper(), path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]
    assert len(ops) >= 30, "the merged document lost operations"
    return ops


def _request(
    gw: str, method: str, path: str, headers: dict[str, str], values: dict[str, str]
) -> httpx.Response:
    factory = BODIES.get((method, path))
    extra = IF_MATCH if method in ("PATCH", "PUT", "DELETE") else {}
    return httpx.request(
        method,
        gw + fill(path, values),
        json=factory() if factory else None,
        headers={**headers, **extra},
        timeout=TIMEOUT,
    )


def settled_profile(gw: str, person: Person) -> dict[str, Any]:
    """The profile once `user.registered` has reached users: a profile made on first access
    from the token has no email yet, and the event fills it in (a second version)."""
    deadline = time.monotonic() + 15
    while True:
        profile: dict[str, Any] = httpx.get(f"{gw}/api/v1/users/me", headers=person.headers).json()
        if profile.get("email") is not None or time.monotonic() > deadline:
            assert profile.get("email") is not None, profile
            return profile
        time.sleep(0.1)


def test_another_users_objects_are_out_of_reach(
    stack: Stack, people: tuple[Person, Person], operations: list[tuple[str, str, dict[str, Any]]]
) -> None:
    """User A aims every operation that names an object at user B's objects."""
    gw = stack.gateway_url
    mallory, bob = people
    before = settled_profile(gw, bob)
    targets = {"user_id": bob.id, "session_id": bob.session_id}
    attacked = []
    for method, path, _ in operations:
        if "{" not in path:
            continue
        response = _request(gw, method, path, mallory.headers, targets)
        if (method, path) == ("GET", "/api/v1/users/{user_id}"):
            assert response.status_code == 200, response.text
            assert set(response.json()) == PUBLIC_VIEW  # no email, role, status...
        else:
            assert response.status_code in (403, 404, 405), (method, path, response.text)
        assert "$argon2" not in response.text
        attacked.append((method, path))
    assert ("DELETE", "/api/v1/auth/sessions/{session_id}") in attacked
    assert ("PATCH", "/api/v1/users/{user_id}") in attacked
    # Bob is untouched: his session lives, his profile is as it was.
    after = httpx.get(f"{gw}/api/v1/users/me", headers=bob.headers)
    assert after.status_code == 200 and after.json() == before
    sessions = httpx.get(f"{gw}/api/v1/auth/sessions", headers=bob.headers).json()["items"]
    assert bob.session_id in {s["id"] for s in sessions}


def test_every_operation_is_guarded_at_the_edge(
    stack: Stack, people: tuple[Person, Person], operations: list[tuple[str, str, dict[str, Any]]]
) -> None:
    """Anonymous: 401 on every operation the document does not mark public. A plain
    user: 403 on every protected operation not on the user list (admin routes)."""
    gw = stack.gateway_url
    user = people[0]
    anonymous = admin_only = 0
    for method, path, op in operations:
        if op.get("security") == []:
            continue
        response = _request(gw, method, path, {}, {})
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        anonymous += 1
        if (method, path) in USER_OPERATIONS:
            continue
        as_user = _request(gw, method, path, user.headers, {})
        assert as_user.status_code == 403, (method, path, as_user.text)
        admin_only += 1
    assert anonymous >= 20 and admin_only >= 10
    for method, path, _ in operations:  # every GET answer as a user: no hash material
        if method == "GET":
            answer = _request(gw, method, path, user.headers, {"user_id": user.id})
            assert answer.status_code < 500 and "$argon2" not in answer.text, path


def test_unknown_routes_and_oversized_bodies_are_problems(
    stack: Stack, people: tuple[Person, Person]
) -> None:
    gw = stack.gateway_url
    for path in (
        "/api/v2/users/me",
        "/admin",
        "/api/v1/catalog/%2e%2e/users/me",  # (a literal ../ is resolved by the client)
        "/api/v1/catalog/docs",  # the services' own docs and internals are not routed
        "/api/v1/catalog/openapi.json",
        "/api/v1/catalog/metrics",
        "/.env",
    ):
        response = httpx.get(gw + path, timeout=TIMEOUT)
        assert response.status_code == 404, (path, response.status_code)
        assert response.headers["content-type"] == "application/problem+json", path
    # Under a protected prefix the edge answers 401 first (nothing to learn anonymously);
    # signed in, an unknown route is a 404 problem from the service.
    for path in ("/api/v1/auth/debug", "/api/v1/users/me/secrets"):
        assert httpx.get(gw + path, timeout=TIMEOUT).status_code == 401
        response = httpx.get(gw + path, headers=people[0].headers, timeout=TIMEOUT)
        assert response.status_code == 404, (path, response.status_code)
        assert response.headers["content-type"] == "application/problem+json", path
    big = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    declared = httpx.post(f"{gw}/api/v1/auth/verify-email", content=big, timeout=TIMEOUT)

    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b" " * 65536

    streamed = httpx.post(f"{gw}/api/v1/auth/verify-email", content=chunks(), timeout=TIMEOUT)
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/problem+json"


@pytest.fixture(scope="module")
def edge(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second gateway in front of the same services, one worker, with a short body
    deadline and a CORS origin (the shared stack's gateway keeps its defaults)."""
    port = free_port()
    base = process_spec(stack.config, "gateway")
    env = base.env | {
        "BIND": f"127.0.0.1:{port}",
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "GATEWAY_BODY_TIMEOUT": str(SLOW_BODY_SECONDS),
        "GATEWAY_CORS_ORIGINS": f'["{ALLOWED_ORIGIN}"]',
        "GATEWAY_RATE_LIMIT_ENABLED": "false",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path_factory.mktemp("edge-metrics")),
    }
    root: Path = tmp_path_factory.mktemp("edge")
    spec = dataclasses.replace(base, name="edge", env=env, port=port, fresh_dirs=())
    supervisor = Supervisor(root / "logs", graceful_timeout=5.0)
    supervisor.add(spec)
    supervisor.start("edge", timeout=30)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        supervisor.stop_all()


def test_headers_cors_and_no_banners(stack: Stack, edge: str) -> None:
    for gw in (stack.gateway_url, edge):
        response = httpx.get(f"{gw}/api/v1/catalog/products?limit=1", timeout=TIMEOUT)
        assert response.status_code == 200
        headers = response.headers
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["strict-transport-security"].startswith("max-age=")
        assert headers["content-security-policy"].startswith("default-src 'none'")
        assert "server" not in headers, headers.get("server")
        assert "x-powered-by" not in headers
    preflight = {"Access-Control-Request-Method": "POST"}
    good = httpx.options(f"{edge}/api/v1/users/me", headers={"Origin": ALLOWED_ORIGIN, **preflight})
    evil = httpx.options(
        f"{edge}/api/v1/users/me", headers={"Origin": "https://evil.example", **preflight}
    )
    simple = httpx.get(
        f"{edge}/api/v1/catalog/products?limit=1", headers={"Origin": "https://evil.example"}
    )
    assert good.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "access-control-allow-origin" not in evil.headers
    assert "access-control-allow-origin" not in simple.headers
    # No CORS origin configured on the shared gateway: nobody gets one.
    shared = httpx.get(
        f"{stack.gateway_url}/api/v1/catalog/products?limit=1", headers={"Origin": ALLOWED_ORIGIN}
    )
    assert "access-control-allow-origin" not in shared.headers
    # Services answer with docs off outside development (the gateway serves the API docs).
    assert httpx.get(f"{stack.url('users')}/docs", timeout=TIMEOUT).status_code == 404


def _slow_body(url: str, results: list[bytes]) -> None:
    """Headers, then one byte of a 64-byte body every 0.3 s, never all of it (so any
    answer is the server cutting the client off); keeps what comes back."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/auth/verify-email HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 64\r\n\r\n"
        )
        answer = b""
        sock.settimeout(0.3)
        for _ in range(30):
            try:
                sock.sendall(b" ")
            except OSError:
                break
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:  # reset: the server closed while we were still sending
                break
            if not chunk:
                break
            answer += chunk
        results.append(answer)


def test_slow_clients_are_cut_off_and_others_are_served(edge: str) -> None:
    """Slow loris on one gunicorn worker: bodies trickled byte by byte are answered 408
    at the deadline, clients that never finish their headers just wait, and everyone
    else is served meanwhile. The auth upstream's circuit stays closed."""
    host, port = edge.removeprefix("http://").split(":")
    idle = [socket.create_connection((host, int(port))) for _ in range(30)]
    for sock in idle:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
    results: list[bytes] = []
    with ThreadPoolExecutor(max_workers=10) as pool:
        slow = [pool.submit(_slow_body, edge, results) for _ in range(10)]
        time.sleep(0.2)
        served = [
            httpx.get(f"{edge}/.well-known/jwks.json", timeout=5).status_code for _ in range(10)
        ]
        for future in slow:
            future.result()
    for sock in idle:
        sock.close()
    assert served == [200] * 10  # the worker answered others while being trickled at
    assert len(results) == 10
    for answer in results:
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"application/problem+json" in answer
    # Slow clients are the client's fault: auth (same upstream) is not cut off.
    assert httpx.get(f"{edge}/.well-known/jwks.json", timeout=5).status_code == 200


def test_tokens_and_passwords_never_reach_the_logs(
    stack: Stack, people: tuple[Person, Person]
) -> None:
    """Secrets in every place a client may put them: headers, query string, bodies."""
    gw = stack.gateway_url
    person = people[0]
    login = httpx.post(
        f"{gw}/api/v1/auth/login",
        json={"email": person.email, "password": PASSWORD},
        timeout=TIMEOUT,
    )
    refresh = login.json()["refresh_token"] if login.status_code == 200 else None
    httpx.get(
        f"{gw}/api/v1/users/me",
        params={"access_token": person.token, "password": PASSWORD},
        headers=person.headers,
        timeout=TIMEOUT,
    )
    if refresh:
        httpx.post(f"{gw}/api/v1/auth/refresh", json={"refresh_token": refresh}, timeout=TIMEOUT)
    httpx.get(f"{gw}/api/v1/users/me", headers={"Authorization": "Bearer not.a.jwt"})
    time.sleep(0.3)  # log lines are flushed line by line; let the last ones land
    signature = person.token.rsplit(".", 1)[1]
    for name in ("gateway", "auth", "users"):
        log = stack.log(name)
        assert log, name
        assert signature not in log, f"an access token in the {name} log"
        assert PASSWORD not in log, f"a password in the {name} log"
        if refresh:
            assert refresh not in log, f"a refresh token in the {name} log"
