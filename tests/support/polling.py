"""`eventually()`: wait for a condition the code under test makes true in the background.

Polls instead of sleeping a fixed time: a test then passes as soon as the condition
holds (fast on a quiet machine) and fails with the last value seen, after a bounded
timeout, on a stuck one (no timing is asserted)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    condition: Callable[[], Awaitable[T] | T],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """The first truthy value `condition()` returns; AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not met within {timeout:g} s; last value: {value!r}")
        await asyncio.sleep(interval)
