"""Honouring a cancellation that asyncio lost on the way.

Python 3.11's `asyncio.wait_for` returns the inner result when the cancellation arrives
just as that result is ready (fixed in 3.12), and redis-py drains every write through it.
A background loop cancelled at that moment would run on forever and hang the shutdown.
The request is still counted on the task (`Task.cancelling()`), so loops check it.
"""

from __future__ import annotations

import asyncio


def raise_if_cancel_requested() -> None:
    """Raise CancelledError if this task was asked to stop and the request was swallowed."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def pause(seconds: float) -> None:
    """`asyncio.sleep` for background loops: first honours a cancellation that was lost
    in the last round, so a loop that pauses through here always stops."""
    raise_if_cancel_requested()
    await asyncio.sleep(seconds)
