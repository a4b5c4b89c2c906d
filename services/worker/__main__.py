"""`python -m services.worker`: the email worker plus its health/metrics server."""

from __future__ import annotations

import signal
import sys
from types import FrameType

import uvicorn

from services.worker.app import create_app
from services.worker.settings import WorkerSettings


def _stopped(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def main() -> None:
    settings = WorkerSettings()
    # uvicorn catches SIGTERM/SIGINT, shuts down gracefully (the lifespan gives in-flight
    # jobs WORKER_SHUTDOWN_GRACE_SECONDS), then re-raises the signal to the handlers that
    # were there before it started. With the default ones that kills the process (exit
    # -15), which an orchestrator counts as a crash; these make a graceful stop exit 0.
    # They also cover a signal that arrives before uvicorn has installed its own.
    signal.signal(signal.SIGTERM, _stopped)
    signal.signal(signal.SIGINT, _stopped)
    app = create_app(settings)
    uvicorn.run(
        app,
        # One process, always: uvicorn reads WEB_CONCURRENCY (set for the gunicorn services
        # in compose and Kubernetes) as its worker count when `workers` is not given, and
        # refuses an app object with workers > 1. The worker scales by replicas.
        workers=1,
        host=settings.worker_host,
        port=settings.worker_port,
        log_config=None,  # keep our JSON logging
        access_log=False,
        timeout_graceful_shutdown=int(settings.worker_shutdown_grace_seconds) + 5,
    )


if __name__ == "__main__":
    main()
