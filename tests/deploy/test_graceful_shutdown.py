"""SIGTERM to gunicorn (deploy/gunicorn.conf.py, 2 uvicorn workers) under load: every
in-flight request completes with 200, and the master exits 0 within GRACEFUL_TIMEOUT."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.deploy.support import DEPLOY, ROOT
from tests.support.polling import process_answering
from tools.devstack.embedded import free_port

pytestmark = pytest.mark.e2e
GRACEFUL_TIMEOUT = 10
CONCURRENCY = 50


async def test_sigterm_under_load_drops_no_request(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "GRACEFUL_TIMEOUT": str(GRACEFUL_TIMEOUT),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "SERVICE_NAME": "drain",
        "LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(DEPLOY / "gunicorn.conf.py"),
            "tests.deploy.drain_app:create_app()",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        connector = aiohttp.TCPConnector(limit=CONCURRENCY, force_close=False)
        async with aiohttp.ClientSession(connector=connector) as session:
            await process_answering(f"{base}/healthz", proc)
            # Open the keep-alive connections first, so the slow requests reuse them.
            warm = await asyncio.gather(
                *(session.get(f"{base}/healthz") for _ in range(CONCURRENCY))
            )
            assert all(r.status == 200 for r in warm)
            for r in warm:
                r.release()

            async def slow() -> int:
                async with session.get(f"{base}/slow") as resp:
                    await resp.read()
                    return resp.status

            in_flight = [asyncio.create_task(slow()) for _ in range(CONCURRENCY)]
            await asyncio.sleep(0.2)  # all sent, none finished (each takes 0.5 s)
            assert not any(t.done() for t in in_flight)
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            statuses = await asyncio.gather(*in_flight, return_exceptions=True)
        assert statuses == [200] * CONCURRENCY
        code = await asyncio.to_thread(proc.wait, GRACEFUL_TIMEOUT)
        elapsed = time.monotonic() - started
        assert code == 0
        assert elapsed < GRACEFUL_TIMEOUT
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if proc.stderr:
            proc.stderr.close()
