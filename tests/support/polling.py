"""`eventually()`: wait for a condition the code under test makes true in the background.

Polls instead of sleeping a fixed time: a test then passes as soon as the condition
holds (fast on a quiet machine) and fails with the last value seen, after a bounded
timeout, on a stuck one (no timing is asserted)."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import httpx

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
        _give_up_after(deadline, timeout, what, value)
        await asyncio.sleep(interval)


def eventually_sync(
    condition: Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """`eventually` for synchronous tests (subprocesses, blocking clients)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        _give_up_after(deadline, timeout, what, value)
        time.sleep(interval)


def _give_up_after(deadline: float, timeout: float, what: str, value: object) -> None:
    if time.monotonic() >= deadline:
        raise AssertionError(f"{what} not met within {timeout:g} s; last value: {value!r}")


def until_status(
    call: Callable[[], httpx.Response], status: int, *, timeout: float = 10.0
) -> httpx.Response:
    """The first response of `call()` with `status` (a stack still warming up answers
    503 first); AssertionError naming the last response otherwise."""
    last: list[httpx.Response] = []

    def answered() -> bool:
        last[:] = [call()]
        return last[0].status_code == status

    try:
        eventually_sync(answered, timeout=timeout, interval=0.1, what=f"status {status}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {last[0].status_code} {last[0].text[:500]}") from None
    return last[0]


async def process_answering(
    url: str, proc: subprocess.Popen[bytes], *, log: Path | None = None, timeout: float = 30.0
) -> None:
    """Wait until a server process the test started answers 200 at `url`; fail at once,
    with the tail of its log, if it exits instead."""
    async with httpx.AsyncClient(trust_env=False) as client:

        async def answering() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:] if log else "the process exited"
            try:
                return (await client.get(url)).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(answering, timeout=timeout, interval=0.2, what=f"{url} answering 200")
