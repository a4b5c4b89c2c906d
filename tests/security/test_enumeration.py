"""No account enumeration: register, login, forgot-password and resend-verification
answer an existing and an unknown address alike, by status, body, headers and time.

Bodies alone are also checked by tests/integration/auth/test_login_sessions.py::
test_wrong_password_and_unknown_email_look_alike, test_passwords.py::
test_forgot_answers_alike_and_mails_only_real_accounts and test_register_verify.py::
test_duplicate_registration_answers_the_same_and_warns_the_owner.

Timing is compared as a ratio of medians within one run (the machine is shared), with
the production password-hashing cost, so that a skipped hash on the unknown-address
path would show as a large ratio."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from services.auth.settings import AuthSettings
from tests.integration.auth.support import (
    FAST,
    PASSWORD,
    auth_client,
    new_email,
    verified_user,
)

pytestmark = pytest.mark.usefixtures("infra")

VOLATILE_HEADERS = {"x-request-id", "date"}
ROUNDS = 9  # per side; the fastest 5 of 9 are stable enough for a 2x band


def _shape(response: httpx.Response) -> tuple[int, dict[str, Any], dict[str, str]]:
    body: dict[str, Any] = response.json()
    for volatile in ("request_id", "instance"):
        body.pop(volatile, None)
    headers = {k: v for k, v in response.headers.items() if k not in VOLATILE_HEADERS}
    return response.status_code, body, headers


async def test_existing_and_unknown_addresses_answer_alike() -> None:
    async with auth_client() as (app, client):
        known, _ = await verified_user(app, client)
        unverified = new_email()
        await client.post("/api/v1/auth/register", json={"email": unverified, "password": PASSWORD})
        for existing in (known, unverified):
            unknown = new_email()
            calls: list[tuple[str, dict[str, str], dict[str, str]]] = [
                (
                    "/api/v1/auth/register",
                    {"email": existing, "password": PASSWORD},
                    {"email": unknown, "password": PASSWORD},
                ),
                (
                    "/api/v1/auth/login",
                    {"email": existing, "password": "Wrong-password-123"},
                    {"email": unknown, "password": "Wrong-password-123"},
                ),
                ("/api/v1/auth/password/forgot", {"email": existing}, {"email": unknown}),
                ("/api/v1/auth/verify-email/resend", {"email": existing}, {"email": unknown}),
            ]
            for path, mine, theirs in calls:
                a = await client.post(path, json=mine)
                b = await client.post(path, json=theirs)
                assert _shape(a) == _shape(b), (path, existing, a.text, b.text)
                assert a.status_code in (202, 401), (path, a.text)


async def _time_ratio(
    first: Callable[[int], Awaitable[httpx.Response]],
    second: Callable[[int], Awaitable[httpx.Response]],
) -> float:
    """Duration of `first` over `second`, interleaved (one warm-up each). Each side is the
    median of its fastest half: noise on a busy machine only ever adds time, so the fast
    samples are the cost of the code path, and a stall on one side cannot fake a leak."""
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(ROUNDS + 1):
        for side, call in enumerate((first, second)):
            start = time.perf_counter()
            response = await call(i)
            elapsed = time.perf_counter() - start
            assert response.status_code < 500, response.text
            if i:
                times[side].append(elapsed)
    fastest = [sorted(side)[: (ROUNDS + 1) // 2] for side in times]
    return statistics.median(fastest[0]) / statistics.median(fastest[1])


async def test_response_time_does_not_reveal_an_account() -> None:
    # Production hashing cost (the point of the test); limits out of the way.
    # The floor of the email flows lowered from 0.25 s to keep the test short.
    production_hash = {k: v for k, v in FAST.items() if not k.startswith("argon2")} | {
        "lockout_threshold": 1000,
        "uniform_response_seconds": 0.1,
    }
    assert AuthSettings().argon2_memory_kib >= 19456
    async with auth_client(**production_hash) as (app, client):
        known, _ = await verified_user(app, client)

        def post(path: str, body: Callable[[int], dict[str, str]]) -> Callable[[int], Any]:
            return lambda i: client.post(path, json=body(i))

        wrong = "Wrong-password-123"
        ratios = {
            "login": await _time_ratio(
                post("/api/v1/auth/login", lambda i: {"email": known, "password": wrong}),
                post("/api/v1/auth/login", lambda i: {"email": new_email(), "password": wrong}),
            ),
            "register": await _time_ratio(
                post("/api/v1/auth/register", lambda i: {"email": known, "password": PASSWORD}),
                post(
                    "/api/v1/auth/register", lambda i: {"email": new_email(), "password": PASSWORD}
                ),
            ),
            "forgot": await _time_ratio(
                post("/api/v1/auth/password/forgot", lambda i: {"email": known}),
                post("/api/v1/auth/password/forgot", lambda i: {"email": new_email()}),
            ),
        }
    print("existing/unknown median time ratios:", {k: round(v, 2) for k, v in ratios.items()})
    for name, ratio in ratios.items():
        assert 0.5 <= ratio <= 2.0, (name, ratio)


def test_every_email_flow_has_the_time_floor() -> None:
    from fastapi.routing import APIRoute

    from services.auth.api import uniform_time
    from tests.security.support import build_app, flat_routes

    flows = {"/api/v1/auth/register", "/api/v1/auth/verify-email/resend"}
    flows.add("/api/v1/auth/password/forgot")
    floored = {
        path
        for path, route in flat_routes(build_app("auth").routes)
        if isinstance(route, APIRoute)
        and any(d.call is uniform_time for d in route.dependant.dependencies)
    }
    assert flows <= floored
    assert AuthSettings().uniform_response_seconds >= 0.1
