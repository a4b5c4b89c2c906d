"""The app's shutdown names a background task that does not stop after its cancel."""

from __future__ import annotations

import asyncio
import logging

import pytest

from services.common import app as app_module
from services.common.app import stop_background
from services.common.cancel import pause
from tests.unit.test_cancel import loop_that_loses_a_cancel


async def slow_to_stop() -> None:
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        await asyncio.sleep(0.3)  # cleanup that takes a while, then it ends
        raise


async def test_a_slow_stop_is_named_in_the_log_and_still_awaited(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(app_module, "STOP_WARN_SECONDS", 0.1)
    slow = asyncio.create_task(slow_to_stop(), name="slow_cleanup")
    quick = asyncio.create_task(asyncio.sleep(10), name="quick")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="services.app"):
        await stop_background([slow, quick])
    assert slow.done() and quick.done()
    warnings = [r.getMessage() for r in caplog.records if r.name == "services.app"]
    assert warnings and all("slow_cleanup" in w and "quick" not in w for w in warnings)


async def test_a_loop_that_lost_its_cancel_stops_through_pause() -> None:
    task = asyncio.create_task(loop_that_loses_a_cancel(pause), name="loop")
    await asyncio.sleep(0)
    await asyncio.wait_for(stop_background([task]), timeout=2)
    assert task.cancelled()
