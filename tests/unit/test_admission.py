"""Admission control (services/common/admission.py): runs bounded by slots, waiters
bounded by the time they would wait, refusals at once with Retry-After, FIFO hand-over,
and a slot never lost to a cancelled caller. Work is simulated with futures the test
resolves itself, so nothing here depends on the machine's speed."""

from __future__ import annotations

import asyncio

import pytest

from services.common.admission import Admission, Overloaded


class Work:
    """Runs the test starts and finishes by hand."""

    def __init__(self) -> None:
        self.started: list[asyncio.Future[str]] = []

    def start(self) -> asyncio.Future[str]:
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.started.append(fut)
        return fut

    def finish(self, index: int, value: str = "done") -> None:
        self.started[index].set_result(value)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_free_slots_start_at_once_and_the_rest_wait_in_order() -> None:
    gate = Admission("t", slots=2, max_wait=10.0, queue_limit=10, initial_run_seconds=0.001)
    work = Work()
    calls = [asyncio.create_task(gate.run(work.start)) for _ in range(4)]
    await settle()
    assert len(work.started) == 2 and gate.running == 2 and gate.waiting == 2
    work.finish(0, "a")
    await settle()
    assert len(work.started) == 3  # the oldest waiter got the freed slot
    work.finish(1, "b")
    work.finish(2, "c")
    await settle()
    work.finish(3, "d")
    assert await asyncio.gather(*calls) == ["a", "b", "c", "d"]
    assert gate.running == 0 and gate.waiting == 0


async def test_a_request_that_would_wait_too_long_is_refused_at_once() -> None:
    # One run takes ~1 s here (as measured), so a waiter's expected wait is 1 s > 0.2 s.
    gate = Admission("t", slots=1, max_wait=0.2, queue_limit=10, initial_run_seconds=1.0)
    work = Work()
    first = asyncio.create_task(gate.run(work.start))
    await settle()
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(Overloaded) as refused:
        await gate.run(work.start)
    assert loop.time() - began < 0.2  # refused without waiting for the budget to run out
    assert refused.value.status == 503
    assert int(refused.value.headers["Retry-After"]) >= 1
    assert len(work.started) == 1
    work.finish(0)
    await first


async def test_a_waiter_not_started_within_the_budget_is_refused_then() -> None:
    # The estimate lets it in (runs look fast), but the run in front never finishes.
    gate = Admission("t", slots=1, max_wait=0.05, queue_limit=10, initial_run_seconds=0.001)
    work = Work()
    first = asyncio.create_task(gate.run(work.start))
    await settle()
    with pytest.raises(Overloaded):
        await gate.run(work.start)
    assert gate.waiting == 0 and len(work.started) == 1
    work.finish(0)
    await first
    assert await gate.run(lambda: _done("next")) == "next"  # the gate still admits


async def test_past_the_queue_limit_a_request_is_refused() -> None:
    gate = Admission("t", slots=1, max_wait=10.0, queue_limit=2, initial_run_seconds=0.001)
    work = Work()
    admitted = [asyncio.create_task(gate.run(work.start)) for _ in range(3)]
    await settle()
    with pytest.raises(Overloaded):
        await gate.run(work.start)
    for i in range(3):
        work.finish(i)
        await settle()
    await asyncio.gather(*admitted)


async def test_the_measured_run_time_drives_the_estimate() -> None:
    gate = Admission("t", slots=1, max_wait=10.0, queue_limit=10, initial_run_seconds=0.001)
    loop = asyncio.get_running_loop()
    for _ in range(10):
        await gate.run(lambda: _later(loop, 0.02))
    assert gate.run_seconds > 0.01  # moved from 1 ms towards the 20 ms each run took


async def test_a_cancelled_waiter_gives_up_its_place_and_a_cancelled_run_holds_its_slot() -> None:
    gate = Admission("t", slots=1, max_wait=10.0, queue_limit=10, initial_run_seconds=0.001)
    work = Work()
    running = asyncio.create_task(gate.run(work.start))
    waiting = asyncio.create_task(gate.run(work.start))
    await settle()
    waiting.cancel()
    await settle()
    assert gate.waiting == 0
    running.cancel()  # the caller goes away; its work (a thread) still runs
    await settle()
    assert gate.running == 1
    third = asyncio.create_task(gate.run(work.start))
    await settle()
    assert len(work.started) == 1  # still occupied by the first run
    work.finish(0)
    await settle()
    assert len(work.started) == 2 and gate.running == 1
    work.finish(1, "third")
    assert await third == "third"
    assert gate.running == 0


async def test_a_failing_run_frees_its_slot() -> None:
    gate = Admission("t", slots=1, max_wait=10.0, queue_limit=10)

    def boom() -> asyncio.Future[str]:
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        fut.set_exception(ValueError("bad hash"))
        return fut

    with pytest.raises(ValueError):
        await gate.run(boom)
    await settle()  # the slot is freed by the future's done callback, on the next turn
    assert gate.running == 0
    assert await gate.run(lambda: _done("ok")) == "ok"


def _done(value: str) -> asyncio.Future[str]:
    fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    fut.set_result(value)
    return fut


def _later(loop: asyncio.AbstractEventLoop, seconds: float) -> asyncio.Future[str]:
    fut: asyncio.Future[str] = loop.create_future()
    loop.call_later(seconds, fut.set_result, "late")
    return fut


async def test_check_refuses_early_what_run_would_refuse() -> None:
    gate = Admission("t", slots=1, max_wait=0.2, queue_limit=10, initial_run_seconds=1.0)
    gate.check()  # a free slot: nothing to refuse
    work = Work()
    first = asyncio.create_task(gate.run(work.start))
    await settle()
    with pytest.raises(Overloaded):
        gate.check()
    work.finish(0)
    await first
    await settle()
    gate.check()
