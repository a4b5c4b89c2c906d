"""`pause` stops a background loop whose last cancellation was lost on the way (Python
3.11's wait_for, inside redis-py, returns a result and drops the cancel)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from services.common.cancel import pause


async def loop_that_loses_a_cancel(sleep: Callable[[float], Awaitable[None]]) -> None:
    lost = False
    while True:
        if not lost:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                lost = True  # as 3.11's wait_for loses it when its inner result is ready
        await sleep(0.01)


async def test_pause_stops_a_loop_that_lost_its_cancellation() -> None:
    task = asyncio.create_task(loop_that_loses_a_cancel(pause))
    await asyncio.sleep(0.01)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2)
    assert task in done and task.cancelled()


async def test_plain_sleep_would_run_on_after_a_lost_cancellation() -> None:
    task = asyncio.create_task(loop_that_loses_a_cancel(asyncio.sleep))
    await asyncio.sleep(0.01)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=0.3)
    assert not done  # the hazard `pause` exists for
    task.cancel()  # a second request lands in the sleep
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_pause_sleeps_when_nothing_was_cancelled() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await pause(0.05)
    assert loop.time() - started >= 0.04
