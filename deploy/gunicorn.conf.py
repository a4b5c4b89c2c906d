"""Gunicorn settings shared by every service and the gateway.

    gunicorn -c deploy/gunicorn.conf.py services.auth.app:app

Everything is read from the environment so one file serves all processes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

bind = [os.environ.get("BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")]
# The gateway's operator listener (/metrics, /readyz): a port that is never published.
if os.environ.get("OPERATOR_PORT"):
    bind.append(f"0.0.0.0:{os.environ['OPERATOR_PORT']}")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# uvicorn without its `server` response header (services/common/gunicorn_worker.py).
worker_class = "services.common.gunicorn_worker.Worker"
# SIGTERM: stop accepting, finish in-flight requests for up to this long, then exit.
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "30"))
timeout = int(os.environ.get("WORKER_TIMEOUT", "60"))
keepalive = int(os.environ.get("KEEPALIVE", "5"))
# Recycle workers now and then (bounded memory growth), not all at once. 10,000 was
# measured to restart a worker every ~2 s at bench rates (connection resets, cold caches);
# 100,000 +- 10,000 is minutes at peak, and the jitter keeps workers from restarting together.
max_requests = int(os.environ.get("MAX_REQUESTS", "100000"))
max_requests_jitter = int(os.environ.get("MAX_REQUESTS_JITTER", "10000"))
accesslog = None  # the app writes its own JSON access line with the request id
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Peers whose X-Forwarded-For/-Proto uvicorn believes (IPs or CIDRs, comma-separated):
# the ingress in front of the gateway, the gateway in front of auth. Never "*".
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
proc_name = os.environ.get("SERVICE_NAME", "shopstack")
# No control socket (gunicorn >= 25, `gunicornc`): nothing here uses it, and its default
# place ($PWD/.gunicorn) is on the read-only root filesystem of the containers.
control_socket_disable = True
# gunicorn's own lines (listening, booting worker, shutting down) as JSON through the apps'
# formatter (services/common/logging.py), so every line of a container is one JSON object.
# This replaces gunicorn's whole default logging config; the apps' configure_logging
# installs the same formatter again in each worker.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "services.common.logging.JsonFormatter", "service": proc_name}},
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    },
    "root": {"level": loglevel.upper(), "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": [], "propagate": True},
        "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": True},
    },
}


def on_starting(server: Any) -> None:
    """Empty the multiprocess metrics directory: samples of a previous run would be summed.
    (Each process makes the folder itself when missing: services/common/metrics.py.)"""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory and Path(directory).is_dir():
        for entry in Path(directory).iterdir():
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges so /metrics does not count it any more."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
