"""The password hasher's own threads: few per worker, lower CPU priority, a bounded queue.

A login storm then queues for a hash slot instead of taking every core from the cheap
reads beside it, and past the queue limit a login gets a 503 with Retry-After, not a
request that waits for minutes."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

import pytest

from services.auth.context import AuthContext
from services.auth.passwords import HasherBusy, PasswordHasher
from services.common.state import provided
from tests.integration.auth.support import PASSWORD, auth_client, is_problem, verified_user

CHEAP = {"memory_kib": 1024, "time_cost": 1, "parallelism": 1}


class OverlapSpy:
    """Wraps the CryptContext: counts hashes running at the same moment."""

    def __init__(self, context: Any, delay: float) -> None:
        self.context = context
        self.delay = delay
        self.active = 0
        self.peak = 0
        self.lock = threading.Lock()

    def _slowly(self, work: Any) -> Any:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            time.sleep(self.delay)  # long enough for every queued hash to try to start
            return work()
        finally:
            with self.lock:
                self.active -= 1

    def hash(self, password: str) -> str:
        return str(self._slowly(lambda: self.context.hash(password)))

    def verify(self, password: str, stored: str) -> bool:
        return bool(self._slowly(lambda: self.context.verify(password, stored)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.context, name)


def spied(hasher: PasswordHasher, delay: float = 0.03) -> OverlapSpy:
    spy = OverlapSpy(hasher._context, delay)
    hasher._context = spy  # type: ignore[assignment]
    return spy


@pytest.mark.parametrize("concurrency", [1, 2])
async def test_hashes_beyond_the_concurrency_wait_their_turn(concurrency: int) -> None:
    hasher = PasswordHasher(**CHEAP, concurrency=concurrency, queue_limit=10, max_wait=10.0)
    spy = spied(hasher)
    try:
        hashes = await asyncio.gather(*(hasher.hash(f"password {i}") for i in range(6)))
    finally:
        hasher.close()
    assert len(set(hashes)) == 6 and all(h.startswith("$argon2id$") for h in hashes)
    assert spy.peak == concurrency


async def test_past_the_queue_limit_a_hash_is_refused_and_the_queue_recovers() -> None:
    hasher = PasswordHasher(**CHEAP, concurrency=1, queue_limit=2, max_wait=10.0)
    spied(hasher)
    try:
        results = await asyncio.gather(
            *(hasher.hash(f"password {i}") for i in range(6)), return_exceptions=True
        )
        refused = [r for r in results if isinstance(r, HasherBusy)]
        assert len(refused) == 3  # one running, two waiting, three refused
        assert all(isinstance(r, str) for r in results if r not in refused)
        assert hasher.in_flight == 0
        ok, _ = await hasher.verify("password 0", str(results[0]))
        assert ok
    finally:
        hasher.close()


async def test_hash_threads_run_at_a_lower_cpu_priority_than_the_event_loop() -> None:
    hasher = PasswordHasher(**CHEAP, nice=10)
    loop_priority = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    try:
        thread_priority = await asyncio.get_running_loop().run_in_executor(
            hasher._executor, lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        )
    finally:
        hasher.close()
    assert thread_priority == min(loop_priority + 10, 19)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == loop_priority


async def test_hash_threads_can_run_in_the_idle_scheduling_class() -> None:
    hasher = PasswordHasher(**CHEAP, sched_idle=True)
    try:
        policy = await asyncio.get_running_loop().run_in_executor(
            hasher._executor, lambda: os.sched_getscheduler(0)
        )
        # What the hasher is for: the hash itself still works in that class.
        stored = await hasher.hash("correct horse battery")
        assert (await hasher.verify("correct horse battery", stored))[0]
    finally:
        hasher.close()
    assert policy == os.SCHED_IDLE
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the event loop's thread is untouched


@pytest.mark.usefixtures("infra")
async def test_a_login_storm_past_the_queue_gets_503s_and_no_500() -> None:
    # Redis's socket timeout raised well past the test's 0.2 s hashes: on a loaded CI
    # machine a 0.5 s stall made a login a Redis 503 (Retry-After 2), which is not what
    # this test is about.
    # A generous wait budget: this test is about the queue's length; the time budget has
    # its own tests (test_admission.py).
    async with auth_client(
        hash_concurrency=1, hash_queue_limit=1, hash_max_wait_ms=10_000, redis_timeout=5.0
    ) as (
        app,
        client,
    ):
        email, _ = await verified_user(app, client)
        spy = spied(provided(app, AuthContext).hasher, delay=0.2)  # logins verify: slow that too
        responses = await asyncio.gather(
            *(
                client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
                for _ in range(8)
            )
        )
        statuses = sorted(r.status_code for r in responses)
        busy = [r for r in responses if r.status_code == 503]
        assert statuses.count(200) >= 2 and busy, statuses
        assert set(statuses) <= {200, 503}
        assert spy.peak == 1
        assert all(is_problem(r, 503) and r.headers["retry-after"] == "1" for r in busy)
        # The storm is over: the next login is served.
        after = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert after.status_code == 200, after.text
