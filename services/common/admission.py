"""Admission control for expensive work: a few slots, a FIFO of waiters bounded by the
time they would wait, and a fast refusal (503 + Retry-After) for what cannot start soon.

A queue bounded only by its length still lets every waiter time out when the work is
slow; bounded by time, a request learns within milliseconds that it will not be served
and its client can back off. Two checks, both per process:

- at arrival: the expected wait (waiters ahead + 1) x the measured run time / slots
  (a moving average of how long a run takes here, under whatever load there is) must
  fit within `max_wait`, and the waiters must be fewer than `queue_limit`;
- while waiting: a waiter that has not started after `max_wait` is refused then (the
  estimate was wrong, or runs got slower), never left to wait longer.

Everything here runs on the event loop (no locks); the work itself may run anywhere
(`run` takes a function that starts it and returns its future, e.g. an executor's).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from typing import TypeVar

from services.common import problems
from services.common.errors import ProblemError
from services.common.metrics import Counter

T = TypeVar("T")
log = logging.getLogger("services.admission")
LOG_EVERY_SECONDS = 10.0
# Weight of the newest run in the moving average of run times.
EWMA_WEIGHT = 0.2

REFUSED = Counter(
    "admission_refused_total",
    "Requests refused by admission control before their work started",
    ["pool", "reason"],  # reason: queue_full | expected_wait | waited_too_long
)


class Overloaded(ProblemError):
    """503 problem+json with Retry-After: the work could not start within its budget."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(
            503, detail, type_=problems.OVERLOADED.slug, headers={"Retry-After": str(retry_after)}
        )


class Admission:
    """At most `slots` runs at once; waiters beyond them wait at most `max_wait` seconds."""

    def __init__(
        self,
        name: str,
        *,
        slots: int,
        max_wait: float,
        queue_limit: int,
        initial_run_seconds: float = 0.05,
        refusal: Callable[[int], ProblemError] | None = None,
    ) -> None:
        if slots < 1:
            raise ValueError("slots must be at least 1")
        self.name = name
        self.slots = slots
        self.max_wait = max_wait
        self.queue_limit = queue_limit
        self.run_seconds = initial_run_seconds  # moving average of one run's wall time
        self._running = 0
        self._waiters: deque[asyncio.Future[bool]] = deque()
        self._refusal = refusal or (lambda after: Overloaded("The server is busy.", after))
        self._logged = -LOG_EVERY_SECONDS

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    def expected_wait(self) -> float:
        """Seconds a request arriving now would wait for a slot (0 if one is free)."""
        if self._running < self.slots:
            return 0.0
        return (self.waiting + 1) * self.run_seconds / self.slots

    def retry_after(self) -> int:
        """Whole seconds (>= 1) until today's queue has drained: when to come back."""
        return max(1, math.ceil((self.waiting + self.slots) * self.run_seconds / self.slots))

    def _refuse(self, reason: str) -> ProblemError:
        REFUSED.labels(self.name, reason).inc()
        now = time.monotonic()
        if now - self._logged > LOG_EVERY_SECONDS:  # a storm: one line, not thousands
            self._logged = now
            log.warning(
                "%s busy, refusing (%s): %d running, %d waiting, %.0f ms per run",
                self.name, reason, self._running, self.waiting, self.run_seconds * 1000,
            )  # fmt: skip
        return self._refusal(self.retry_after())

    def check(self) -> None:
        """Refuse now if a request arriving now would be refused: lets a route turn work
        away before its cheaper steps (a database read) when the slot is what it lacks."""
        if self._running < self.slots and not self.waiting:
            return
        if self.waiting >= self.queue_limit:
            raise self._refuse("queue_full")
        if self.expected_wait() > self.max_wait:
            raise self._refuse("expected_wait")

    async def _acquire(self) -> None:
        if self._running < self.slots and not self.waiting:
            self._running += 1
            return
        self.check()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(self.max_wait, self._expire, waiter)
        try:
            admitted = await waiter  # True: a finished run handed its slot over
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self._release()  # handed a slot just as the caller went away: pass it on
            raise
        finally:
            timer.cancel()
            if not waiter.done() or waiter.cancelled() or not waiter.result():
                self._discard(waiter)
        if not admitted:
            raise self._refuse("waited_too_long")

    def _expire(self, waiter: asyncio.Future[bool]) -> None:
        if not waiter.done():
            waiter.set_result(False)
            self._discard(waiter)

    def _discard(self, waiter: asyncio.Future[bool]) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(True)  # the slot goes to the oldest waiter, still counted
                return
        self._running -= 1

    async def run(self, start: Callable[[], asyncio.Future[T]]) -> T:
        """Wait for a slot (or be refused), then start the work and await it. The slot
        is held until the work has finished, even if the caller is cancelled first (a
        thread cannot be stopped: its run still occupies a core)."""
        await self._acquire()
        began = time.monotonic()
        try:
            future = start()
        except BaseException:
            self._release()
            raise

        def finished(_: object) -> None:
            took = time.monotonic() - began
            self.run_seconds += EWMA_WEIGHT * (took - self.run_seconds)
            self._release()

        future.add_done_callback(finished)
        return await asyncio.shield(future)
