"""The real worker process (`python -m services.worker`) SIGKILLed in the middle of an
SMTP DATA exchange: the email still goes out, with at most one duplicate."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import redis.asyncio as aioredis

from services.worker.mailer import message_id
from tests.integration.worker.smtp import SmtpSink, free_port
from tests.integration.worker.test_delivery import delivered_check, relay, write_email
from tests.support.infra import Infra
from tests.support.polling import eventually


def start_worker(infra: Infra, smtp: SmtpSink, port: int, metrics_dir: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": infra.database_url,
        "REDIS_URL": infra.redis_url,
        "SMTP_PORT": str(smtp.port),
        "WORKER_PORT": str(port),
        "WORKER_HOST": "127.0.0.1",
        "WORKER_JOB_HEARTBEAT_SECONDS": "1",
        "WORKER_SWEEP_INTERVAL_SECONDS": "1",
        "WORKER_SWEEP_ABORT_SECONDS": "0.2",
        "WORKER_RETRY_DELAY_SECONDS": "0.05",
        "WORKER_SHUTDOWN_GRACE_SECONDS": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    metrics_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "services.worker"], env=env)


async def wait_ready(port: int) -> None:
    async def ready() -> bool:
        try:
            async with httpx.AsyncClient() as client:
                return (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    assert await eventually(ready, timeout=20)


async def test_sigkill_during_smtp_data_still_delivers_with_at_most_one_duplicate(
    factory, infra: Infra, smtp: SmtpSink, redis: aioredis.Redis, tmp_path: Path
) -> None:
    smtp.handler.delay_seconds = 30  # the server holds its "250" reply: the send hangs in DATA
    outbox_id = await write_email(factory)
    await relay(factory, infra.redis_url)
    port = free_port()
    first = start_worker(infra, smtp, port, tmp_path / "m1")
    second = None
    try:
        # The SMTP server has the message but the worker has not seen it accepted.
        assert await asyncio.to_thread(smtp.handler.data_started.wait, 20)
        first.send_signal(signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
        assert not await delivered_check(factory, outbox_id)
        smtp.handler.delay_seconds = 0  # the next attempt is answered at once

        second = start_worker(infra, smtp, port, tmp_path / "m2")
        await wait_ready(port)
        assert await eventually(lambda: delivered_check(factory, outbox_id), timeout=30)
        async with httpx.AsyncClient() as client:
            body = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        assert "emails_sent_total" in body
        second.send_signal(signal.SIGTERM)  # graceful stop: exit 0, not -15
        assert second.wait(15) == 0
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(5)
    copies = len(smtp.handler.by_message_id(message_id(outbox_id, "no-reply@shopstack.local")))
    print(f"\nSIGKILL during DATA: the SMTP server received {copies} copy(ies)")
    assert 1 <= copies <= 2
