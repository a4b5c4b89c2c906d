"""Prometheus metrics shared by every process, correct under several gunicorn workers.

With PROMETHEUS_MULTIPROC_DIR set, each process writes its samples to files there and
`/metrics` aggregates them (gunicorn's on_starting and the worker's entrypoint empty it
at start). Every module that defines metrics imports Counter, Gauge and Histogram from
here, not from prometheus_client: importing this module first makes the folder.
"""

from __future__ import annotations

import os

# Before the first metric: one without labels opens its file in the folder at once. Every
# process makes the folder itself, so none depends on who ran before it (a fresh /tmp
# tmpfs or emptyDir holds nothing; the migrate job has no gunicorn to make it).
if _MULTIPROC_DIR := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(_MULTIPROC_DIR, exist_ok=True)

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.requests import Request
from starlette.responses import Response

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests handled", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to handle an HTTP request",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
HTTP_IN_PROGRESS = Gauge(
    "http_requests_in_progress",
    "HTTP requests being handled",
    ["method"],
    multiprocess_mode="livesum",
)
CACHE_REQUESTS = Counter(
    "cache_requests_total",
    "Cache lookups by cache and result (hit, miss, error)",
    ["cache", "result"],
)
RATE_LIMITED = Counter("rate_limit_rejections_total", "Requests refused by a rate limit", ["limit"])
DB_POOL_IN_USE = Gauge(
    "db_pool_connections_in_use",
    "Database connections checked out of the pool",
    multiprocess_mode="livesum",
)
DB_POOL_OVERFLOW = Gauge(
    "db_pool_overflow_connections",
    "Connections open beyond the pool size",
    multiprocess_mode="livesum",
)
OUTBOX_BACKLOG = Gauge(
    "outbox_backlog_messages",
    "Outbox rows not yet handed to Redis",
    ["service"],
    # live*: gunicorn recycles workers (max_requests); a dead worker's last sample must
    # not stay in the aggregate forever, as it would with plain "max".
    multiprocess_mode="livemax",
)
OUTBOX_RELAYED = Counter("outbox_relayed_total", "Outbox rows handed to Redis", ["service", "kind"])


def registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        reg = CollectorRegistry()
        multiprocess.MultiProcessCollector(reg)
        return reg
    from prometheus_client import REGISTRY

    return REGISTRY


async def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(registry()), media_type=CONTENT_TYPE_LATEST)
