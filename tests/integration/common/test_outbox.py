"""Outbox rows reach Redis exactly once, even with two relays racing."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import func, insert, select

from services.common.db import transaction
from services.common.outbox import (
    add_email,
    add_event,
    relay_batch,
    run_relay,
    wake_relays_on_commit,
)
from tests.integration.common.kit_models import KitOutbox
from tests.support.polling import eventually


async def write_rows(factory, n: int) -> set[str]:
    ids = set()
    async with transaction(factory) as session:  # its commit wakes the relays
        for i in range(n):
            row = add_event(session, KitOutbox, "kit.happened", {"i": i})
            ids.add(str(row.id))
    return ids


async def test_rows_written_in_a_rolled_back_transaction_never_leave(kit_factory) -> None:
    async with kit_factory() as session:
        add_email(
            session, KitOutbox, template="verify_email", to="a@example.com", context={"link": "x"}
        )
        await session.rollback()
    published: list[str] = []

    async def publish(row) -> None:
        published.append(str(row.id))

    assert await relay_batch(kit_factory, KitOutbox, publish, service="kit") == 0
    assert published == []


async def test_two_relays_hand_each_row_over_once(kit_factory) -> None:
    ids = await write_rows(kit_factory, 300)
    published: list[str] = []

    async def publish(row) -> None:
        await asyncio.sleep(0)  # let the other relay run in between
        published.append(str(row.id))

    async def relay_until_empty() -> None:
        while await relay_batch(kit_factory, KitOutbox, publish, service="kit", batch_size=25):
            pass

    await asyncio.gather(relay_until_empty(), relay_until_empty())
    assert len(published) == len(ids)
    assert set(published) == ids
    async with kit_factory() as session:
        left = await session.exec(
            select(func.count()).select_from(KitOutbox).where(KitOutbox.published_at.is_(None))
        )
        assert left.one()[0] == 0


async def test_a_failed_publish_keeps_the_row_for_the_next_try(kit_factory) -> None:
    ids = await write_rows(kit_factory, 3)

    async def broken(row) -> None:
        raise ConnectionError("redis is down")

    try:
        await relay_batch(kit_factory, KitOutbox, broken, service="kit")
    except ConnectionError:
        pass
    published: list[str] = []

    async def publish(row) -> None:
        published.append(str(row.id))

    await relay_batch(kit_factory, KitOutbox, publish, service="kit")
    assert set(published) == ids


async def test_a_commit_wakes_an_idle_relay(kit_factory) -> None:
    published: list[str] = []

    async def publish(row) -> None:
        published.append(str(row.id))

    # After its first (empty) poll this relay would sleep 60 s: only the commit can wake it.
    relay = asyncio.create_task(
        run_relay(kit_factory, KitOutbox, publish, service="kit", interval=60, idle_max=60)
    )
    try:
        await asyncio.sleep(0.3)  # the first poll has run and found nothing
        assert published == []
        ids = await write_rows(kit_factory, 2)
        await eventually(lambda: len(published) == 2, what="the woken relay published")
        assert set(published) == ids
        # A rolled-back transaction wakes nobody and leaves nothing.
        async with kit_factory() as session:
            add_event(session, KitOutbox, "kit.never", {})
            await session.rollback()
        await asyncio.sleep(0.3)
        assert len(published) == 2
        # Rows inserted with a Core statement wake it too, when the writer asks for it.
        async with transaction(kit_factory) as session:
            row = {"id": uuid.uuid4(), "kind": "event", "topic": "kit.bulk", "payload": {}}
            await (await session.connection()).execute(insert(KitOutbox.__table__), [row])
            wake_relays_on_commit(session)
        await eventually(lambda: len(published) == 3, what="the bulk rows published")
        assert published[2:] == [str(row["id"])]
    finally:
        relay.cancel()
        await asyncio.gather(relay, return_exceptions=True)
