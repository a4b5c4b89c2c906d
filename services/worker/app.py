"""The worker process' app: the saq worker and the metrics sampler run as background
tasks of a small FastAPI app that serves /healthz, /readyz and /metrics on WORKER_PORT."""

from __future__ import annotations

from fastapi import FastAPI
from saq import Worker
from saq.types import PartialTimersDict

from services.common.app import ServiceSpec
from services.common.app import create_app as build_app
from services.common.jobs import SEND_EMAIL_JOB
from services.worker.emails import EmailJobs
from services.worker.queue import (
    DEQUEUE_TIMEOUT_SECONDS,
    EmailQueue,
    create_queue,
    install_log_filter,
)
from services.worker.sampler import run_sampler
from services.worker.settings import WorkerSettings


class EmailWorker(Worker):
    async def stop(self) -> None:
        # saq's stop waits up to the grace period for all its tasks, its endless upkeep
        # loops (sweep, schedule, abort, worker info) too, so every stop took the whole
        # grace period. Stop those at once: the wait then covers only jobs in flight
        # (and idle dequeues, which return within DEQUEUE_TIMEOUT_SECONDS).
        for task in list(self.tasks):
            if task.get_name() != "process":
                task.cancel()
        await super().stop()


def build_worker(queue: EmailQueue, jobs: EmailJobs, settings: WorkerSettings) -> Worker:
    timers: PartialTimersDict = {
        "schedule": 1,  # retries due are moved to the ready list within a second
        "worker_info": 10,
        "sweep": settings.worker_sweep_interval_seconds,
        "abort": 1,
    }
    worker: Worker = EmailWorker(
        queue,
        functions=[(SEND_EMAIL_JOB, jobs.send_email)],
        concurrency=settings.worker_concurrency,
        before_process=jobs.apply_policy,
        timers=timers,
        dequeue_timeout=DEQUEUE_TIMEOUT_SECONDS,
        shutdown_grace_period_s=settings.worker_shutdown_grace_seconds,  # type: ignore[arg-type]
    )
    # The HTTP server owns SIGTERM/SIGINT; its lifespan shutdown stops the worker
    # gracefully (in-flight sends get the grace period).
    worker.SIGNALS = []
    return worker


async def run_email_worker(app: FastAPI) -> None:
    settings: WorkerSettings = app.state.settings
    queue = create_queue(settings)
    worker = build_worker(queue, EmailJobs(settings, app.state.session_factory), settings)
    try:
        await queue.connect()
        await worker.start()
    finally:
        await queue.disconnect()


async def run_metrics_sampler(app: FastAPI) -> None:
    settings: WorkerSettings = app.state.settings
    queue = create_queue(settings)
    try:
        await run_sampler(queue, app.state.redis, settings.worker_sample_interval_seconds)
    finally:
        await queue.disconnect()


def create_app(settings: WorkerSettings | None = None) -> FastAPI:
    settings = settings or WorkerSettings()
    install_log_filter()
    return build_app(
        ServiceSpec(
            name="worker",
            settings=settings,
            title="Worker",
            description="Email jobs (saq queue `emails`): health and metrics only.",
            background=[run_email_worker, run_metrics_sampler],
        )
    )
