"""Dead letters: list them, and re-queue them for another round of attempts.

    python -m services.worker.dead list [--replayed] [--json]
    python -m services.worker.dead replay --id <outbox id> [--id ...]
    python -m services.worker.dead replay --all

A replayed message keeps its outbox id as job key and Message-ID, so a replay of a
message that was in fact delivered is skipped by the delivery check.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from saq import Queue

from services.common.db import create_engine, session_factory
from services.common.jobs import (
    EMAIL_JOB_RETRIES,
    EMAIL_JOB_TIMEOUT_SECONDS,
    SEND_EMAIL_JOB,
    email_queue,
)
from services.worker import store
from services.worker.models import DeadEmail
from services.worker.settings import WorkerSettings


def mask_address(address: object) -> str:
    """a***@example.com: enough to recognise a message, not a list of addresses."""
    local, _, domain = str(address).partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def describe(row: DeadEmail) -> dict[str, object]:
    return {
        "outbox_id": row.outbox_id,
        "template": row.message.get("template"),
        "to": mask_address(row.message.get("to")),
        "attempts": row.attempts,
        "died_at": row.died_at.isoformat(),
        "replayed_at": row.replayed_at.isoformat() if row.replayed_at else None,
        "error": row.error,
    }


async def enqueue_replay(queue: Queue, row: DeadEmail) -> bool:
    """Same job shape as the relay's; False if this death was already re-queued and is live.

    The key is per death, not the outbox id: the dead job's own key may still be held
    by saq (an abort marker); the worker dedupes on the outbox id anyway."""
    job = await queue.enqueue(
        SEND_EMAIL_JOB,
        key=f"{row.outbox_id}/replay/{int(row.died_at.timestamp() * 1000)}",
        timeout=EMAIL_JOB_TIMEOUT_SECONDS,
        retries=EMAIL_JOB_RETRIES,
        outbox_id=row.outbox_id,
        message=row.message,
        request_id=row.request_id,
    )
    return job is not None


async def replay(
    factory: store.Factory, queue: Queue, *, ids: list[str] | None, out: TextIO
) -> int:
    rows = await store.list_dead(factory, ids=ids)
    for row in rows:
        queued = await enqueue_replay(queue, row)
        # Only if it did not die again meanwhile (died_at unchanged).
        await store.mark_replayed(factory, [(row.outbox_id, row.died_at)])
        out.write(f"{row.outbox_id} {'requeued' if queued else 'already queued'}\n")
    if ids:
        found = {r.outbox_id for r in rows}
        for missing in sorted(set(ids) - found):
            out.write(f"{missing} not found (or already replayed)\n")
    return len(rows)


async def run(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = parser().parse_args(argv)
    settings = WorkerSettings()
    engine = create_engine(settings, pool_size=2, max_overflow=0)
    factory = session_factory(engine)
    try:
        if args.command == "list":
            rows = await store.list_dead(factory, include_replayed=args.replayed)
            for row in rows:
                item = describe(row)
                if args.json:
                    out.write(json.dumps(item) + "\n")
                else:
                    out.write(
                        f"{item['outbox_id']}  {item['template']}  {item['to']}  "
                        f"attempts={item['attempts']}  died={item['died_at']}  {item['error']}\n"
                    )
            return 0
        if not args.all and not args.id:
            out.write("replay needs --id ... or --all\n")
            return 2
        queue = email_queue(settings.redis_url)
        try:
            count = await replay(factory, queue, ids=None if args.all else args.id, out=out)
        finally:
            await queue.disconnect()
        out.write(f"{count} message(s) requeued\n")
        return 0
    finally:
        await engine.dispose()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m services.worker.dead",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="dead messages, oldest first")
    listing.add_argument("--replayed", action="store_true", help="include replayed ones")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    again = sub.add_parser("replay", help="re-queue dead messages")
    again.add_argument("--id", action="append", help="outbox id (repeatable)")
    again.add_argument("--all", action="store_true", help="every dead message not yet replayed")
    return p


def main() -> None:
    sys.exit(asyncio.run(run()))


if __name__ == "__main__":
    main()
