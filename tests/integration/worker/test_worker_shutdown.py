"""SIGTERM to the real worker process (`python -m services.worker`): a send in flight is
finished within WORKER_SHUTDOWN_GRACE_SECONDS, or handed back to the queue when it takes
longer; either way the process exits 0 (a graceful stop, not a crash, for orchestrators)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis.asyncio as aioredis

from services.common.jobs import email_queue
from services.worker.mailer import message_id
from tests.integration.worker.smtp import SmtpSink, free_port
from tests.integration.worker.test_delivery import delivered_check, relay, write_email
from tests.support.infra import Infra
from tests.support.polling import eventually


def start_worker(infra: Infra, smtp: SmtpSink, grace: float, metrics_dir: Path) -> subprocess.Popen:
    metrics_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "DATABASE_URL": infra.database_url,
        "REDIS_URL": infra.redis_url,
        "SMTP_PORT": str(smtp.port),
        "WORKER_PORT": str(free_port()),
        "WORKER_HOST": "127.0.0.1",
        "WORKER_SHUTDOWN_GRACE_SECONDS": str(grace),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    return subprocess.Popen([sys.executable, "-m", "services.worker"], env=env)


async def stop(proc: subprocess.Popen) -> tuple[int, float]:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(proc.wait, 30)
    return code, time.monotonic() - started


async def test_sigterm_finishes_the_send_in_flight_and_exits_0(
    factory, infra: Infra, smtp: SmtpSink, redis: aioredis.Redis, tmp_path: Path
) -> None:
    smtp.handler.delay_seconds = 1.5  # the server answers "250" 1.5 s into DATA
    outbox_id = await write_email(factory)
    await relay(factory, infra.redis_url)
    proc = start_worker(infra, smtp, grace=15, metrics_dir=tmp_path / "m")
    try:
        assert await asyncio.to_thread(smtp.handler.data_started.wait, 20)
        code, took = await stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert code == 0, f"exit code {code}"
    # Done when the send is: saq's endless upkeep loops must not hold the stop for the
    # whole grace period (a generous bound: that bug makes it 15 s or more).
    assert took < 12
    assert await delivered_check(factory, outbox_id)  # the send completed and was recorded
    sent = smtp.handler.by_message_id(message_id(outbox_id, "no-reply@shopstack.local"))
    assert len(sent) == 1


async def test_sigterm_hands_a_slow_send_back_to_the_queue_and_exits_0(
    factory, infra: Infra, smtp: SmtpSink, redis: aioredis.Redis, tmp_path: Path
) -> None:
    smtp.handler.delay_seconds = 30  # longer than the grace period
    outbox_id = await write_email(factory)
    await relay(factory, infra.redis_url)
    proc = start_worker(infra, smtp, grace=1, metrics_dir=tmp_path / "m")
    try:
        assert await asyncio.to_thread(smtp.handler.data_started.wait, 20)
        code, took = await stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert code == 0, f"exit code {code}"
    assert took < 1 + 10
    assert not await delivered_check(factory, outbox_id)
    queue = email_queue(infra.redis_url)
    try:

        async def requeued() -> bool:
            job = await queue.job(outbox_id)
            return job is not None and job.status.value == "queued"

        # Back in the queue for the next worker, not lost and not marked sent.
        assert await eventually(requeued, timeout=5)
    finally:
        await queue.disconnect()
