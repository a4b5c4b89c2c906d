"""Background clean-up: idempotency keys past their replay window (a lifespan task)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from services.catalog.idempotency import purge_expired
from services.common.cancel import pause

log = logging.getLogger("services.catalog.janitor")
INTERVAL_SECONDS = 600.0


async def purge_once(app: FastAPI) -> int:
    async with app.state.session_factory() as session:
        deleted = await purge_expired(session, app.state.settings.idempotency_ttl_hours)
        await session.commit()
    return deleted


async def idempotency_janitor(app: FastAPI) -> None:
    """Every few minutes; an error is logged and retried next round, never fatal."""
    while True:
        try:
            deleted = await purge_once(app)
            if deleted:
                log.info("purged %d expired idempotency keys", deleted)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("idempotency purge failed: %s", type(exc).__name__)
        await pause(INTERVAL_SECONDS)
