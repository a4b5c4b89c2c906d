"""Password hashing (argon2id via passlib) and the password policy.

Hashing costs tens of milliseconds of CPU and `memory_kib` of memory, so it runs in the
hasher's own threads, never on the event loop: `concurrency` per worker (optionally at a
lower CPU priority), behind admission control (services/common/admission.py): a hash
that could not start within `max_wait` seconds (judged at arrival from the measured hash
time, and again while it waits), or past `queue_limit` waiters, is refused at once with
a 503 and Retry-After instead of queued until every client has timed out. Login,
registration, password change and reset all hash, so all of them are admitted here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from importlib import resources
from typing import TypeVar

from passlib.context import CryptContext

from services.auth.settings import AuthSettings
from services.common.admission import Admission, Overloaded

MIN_LENGTH = 8
MAX_LENGTH = 128

T = TypeVar("T")


class HasherBusy(Overloaded):
    def __init__(self, retry_after: int = 1) -> None:
        super().__init__("Too many sign-ins at once; try again in a moment.", retry_after)


def _lower_priority(nice: int, sched_idle: bool) -> Callable[[], None]:
    def initializer() -> None:
        # Linux schedules threads separately: this thread only, not the event loop's.
        with contextlib.suppress(AttributeError, OSError):
            if sched_idle:
                # pid 0 is the calling thread. A thread of the normal class that wakes up
                # always preempts a SCHED_IDLE one; nice only lowers its share.
                os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            if nice:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)

    return initializer


class PasswordHasher:
    """argon2id with configurable cost; knows when a stored hash needs re-hashing."""

    def __init__(
        self,
        *,
        memory_kib: int,
        time_cost: int,
        parallelism: int,
        concurrency: int = 4,
        queue_limit: int = 32,
        max_wait: float = 0.1,
        nice: int = 0,
        sched_idle: bool = False,
    ) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=concurrency,
            thread_name_prefix="argon2",
            initializer=_lower_priority(nice, sched_idle) if nice or sched_idle else None,
        )
        self._context = CryptContext(
            schemes=["argon2"],
            argon2__type="ID",
            argon2__memory_cost=memory_kib,
            argon2__time_cost=time_cost,
            argon2__parallelism=parallelism,
        )
        # Verified when the account does not exist, so a miss costs as much as a hit.
        began = time.monotonic()
        self._dummy = self._context.hash("dummy password for timing equalisation")
        self.admission = Admission(
            "password_hash",
            slots=concurrency,
            max_wait=max_wait,
            queue_limit=queue_limit,
            # Idle-machine time of one hash: the first estimate, replaced by what runs measure.
            initial_run_seconds=time.monotonic() - began,
            refusal=HasherBusy,
        )

    @classmethod
    def for_settings(cls, settings: AuthSettings) -> PasswordHasher:
        return cls(
            memory_kib=settings.argon2_memory_kib,
            time_cost=settings.argon2_time_cost,
            parallelism=settings.argon2_parallelism,
            concurrency=settings.hash_concurrency,
            queue_limit=settings.hash_queue_limit,
            max_wait=settings.hash_max_wait_ms / 1000,
            nice=settings.hash_nice,
            sched_idle=settings.hash_sched_idle,
        )

    @property
    def in_flight(self) -> int:
        """Hashes running plus waiting for a slot."""
        return self.admission.running + self.admission.waiting

    def check_capacity(self) -> None:
        """Raise HasherBusy now if a hash asked for now would be refused."""
        self.admission.check()

    async def _run(self, work: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        return await self.admission.run(lambda: loop.run_in_executor(self._executor, work))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def hash(self, password: str) -> str:
        return await self._run(lambda: str(self._context.hash(password)))

    async def verify(self, password: str, stored: str | None) -> tuple[bool, bool]:
        """(matches, needs_rehash). With no stored hash, burns the same time and says no."""
        target = stored or self._dummy

        def check() -> tuple[bool, bool]:
            try:
                ok = bool(self._context.verify(password, target))
            except (ValueError, TypeError):
                return False, False  # a malformed stored hash never matches
            return ok and stored is not None, ok and self._context.needs_update(target)

        return await self._run(check)


@cache
def common_passwords() -> frozenset[str]:
    text = resources.files("services.auth").joinpath("data/common-passwords.txt").read_text()
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line and not line.startswith("#")
    )


def policy_problems(password: str, email: str) -> list[str]:
    """Why the password is refused (empty: accepted). Messages never echo the password."""
    problems = []
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        problems.append(f"must be between {MIN_LENGTH} and {MAX_LENGTH} characters long")
    lowered = password.strip().lower()
    local_part = email.partition("@")[0].lower()
    if lowered in {email.lower(), local_part}:
        problems.append("must not be your email address")
    if lowered in common_passwords():
        problems.append("is one of the most common passwords")
    return problems
