"""The gateway's own Prometheus metrics (the shared http_* ones come from services.common)."""

from __future__ import annotations

from services.common.metrics import LATENCY_BUCKETS, Counter, Gauge, Histogram

UPSTREAM_DURATION = Histogram(
    "gateway_upstream_request_duration_seconds",
    "Time from sending a request upstream to its response headers",
    ["upstream", "route"],  # route: the matched prefix, never the raw path
    buckets=LATENCY_BUCKETS,
)
UPSTREAM_RESPONSES = Counter(
    "gateway_upstream_responses_total",
    "Upstream outcomes by status class (2xx..5xx, or timeout / unreachable)",
    ["upstream", "status_class"],
)
CIRCUIT_STATE = Gauge(
    "gateway_circuit_state",
    "Circuit breaker state per instance: 0 closed, 1 half-open, 2 open",
    ["upstream", "instance"],
    # live: with plain "max" a recycled worker's last "open" would be reported forever.
    multiprocess_mode="livemax",
)
UPSTREAM_HEALTHY = Gauge(
    "gateway_upstream_healthy",
    "1 when the instance answered its last /healthz poll",
    ["upstream", "instance"],
    multiprocess_mode="livemin",
)
RETRIES = Counter("gateway_upstream_retries_total", "Idempotent requests retried", ["upstream"])
RATE_LIMIT_UNAVAILABLE = Counter(
    "gateway_rate_limit_unavailable_total",
    "Requests let through unlimited because Redis could not count them (fail open)",
)
SHED_AT_EDGE = Counter(
    "gateway_shed_at_edge_total",
    "Hashing-route requests refused by the gateway itself just after auth shed the route",
)
