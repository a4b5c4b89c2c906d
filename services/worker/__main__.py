"""`python -m services.worker`: the email worker plus its health/metrics server."""

from __future__ import annotations

import uvicorn

from services.worker.app import create_app
from services.worker.settings import WorkerSettings


def main() -> None:
    settings = WorkerSettings()
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.worker_host,
        port=settings.worker_port,
        log_config=None,  # keep our JSON logging
        access_log=False,
        timeout_graceful_shutdown=int(settings.worker_shutdown_grace_seconds) + 5,
    )


if __name__ == "__main__":
    main()
