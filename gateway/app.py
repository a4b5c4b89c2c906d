"""The gateway app: `gunicorn -c deploy/gunicorn.conf.py 'gateway.app:create_app()'`.

Built with the same factory as the services (errors, request ids, logs, metrics);
its own routes are /healthz, /readyz, /metrics, /openapi.json and /docs. The proxy is
not mounted as a route: GatewayEdge, the innermost user middleware, hands every routed
prefix to `Proxy.forward`; GatewayApi stacks the user middleware outside FastAPI's own
layers, so such requests never meet them (gateway/edge.py).
"""

from __future__ import annotations

from typing import Any

import aiohttp
from fastapi import FastAPI, Request
from starlette.middleware import Middleware

from gateway.docs import install_docs
from gateway.edge import GatewayApi, GatewayEdge
from gateway.edge_auth import EdgeAuth
from gateway.proxy import Proxy
from gateway.ratelimit import Limit, RateLimiter
from gateway.routing import RoutingTable, poll_health
from gateway.settings import GatewaySettings
from gateway.upstream import UpstreamPool
from services.common.app import ServiceSpec, tracing_on
from services.common.app import create_app as create_service_app
from services.common.health import ReadinessCheck
from services.common.jwt import JwksFetcher


def _upstream_check(table: RoutingTable, name: str) -> ReadinessCheck:
    async def check(request: Request) -> None:
        upstream = next(u for u in table.upstreams if u.name == name)
        if not upstream.any_healthy:
            raise RuntimeError(f"no healthy instance of {name}")

    return check


def create_app(
    settings: GatewaySettings | None = None,
    *,
    jwks_fetcher: JwksFetcher | None = None,
    span_exporter: Any = None,
) -> FastAPI:
    settings = settings or GatewaySettings()
    table = RoutingTable(
        settings.route_table,
        failure_threshold=settings.circuit_failures,
        open_seconds=settings.circuit_open_seconds,
    )
    proxy = Proxy(settings, table)

    async def startup(app: FastAPI) -> None:
        connector = aiohttp.TCPConnector(
            limit=settings.pool_limit,
            limit_per_host=settings.pool_limit_per_host,
            keepalive_timeout=settings.keepalive_timeout,
            # Short: a name with several replicas (compose --scale, a headless Service)
            # gains and loses addresses; aiohttp rotates over the cached ones, but would
            # see a new replica only when the entry expires.
            ttl_dns_cache=10,
        )
        # One pooled keep-alive session per worker; bodies pass through undecoded. No
        # User-Agent/Accept-Encoding of aiohttp's own (set on the session: per request,
        # aiohttp rebuilds the set on every call).
        proxy.session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )
        # aiohttp silently resends idempotent requests once on a dropped connection; the
        # gateway's own bounded retry policy must be the only one (as aiohttp's test
        # client does: there is no public switch).
        proxy.session._retry_connection = False
        if settings.lean_upstream:
            proxy.lean = UpstreamPool(
                limit=settings.pool_limit,
                keepalive_timeout=settings.keepalive_timeout,
                connect_timeout=settings.connect_timeout,
                total_timeout=settings.total_timeout,
            )
            if tracing_on(spec):  # the same switch as the app's own spans
                proxy.lean.enable_tracing()
        proxy.edge = EdgeAuth(app.state.token_verifier, app.state.redis)
        if settings.rate_limit_enabled:
            proxy.limiter = RateLimiter(
                app.state.redis,
                anonymous=Limit.parse("gateway_anonymous", settings.rate_anonymous),
                user=Limit.parse("gateway_user", settings.rate_user),
                auth=Limit.parse("gateway_auth", settings.rate_auth),
            )
        app.state.proxy = proxy

    async def shutdown(app: FastAPI) -> None:
        if proxy.session is not None:
            await proxy.session.close()
        if proxy.lean is not None:
            proxy.lean.close()
        if proxy.limiter is not None:
            await proxy.limiter.close()

    async def health(app: FastAPI) -> None:
        assert proxy.session is not None
        await poll_health(
            table,
            proxy.session,
            interval=settings.health_interval,
            wait=settings.health_timeout,
            unhealthy_interval=settings.health_unhealthy_interval,
        )

    spec = ServiceSpec(
        name="gateway",
        settings=settings,
        title="shopstack API",
        description="Every service of shopstack behind one gateway.",
        use_database=False,
        on_startup=[startup],
        on_shutdown=[shutdown],
        background=[health],
        readiness={f"upstream:{u.name}": _upstream_check(table, u.name) for u in table.upstreams},
        jwks_fetcher=jwks_fetcher,
        span_exporter=span_exporter,
        app_class=GatewayApi,
    )
    app = create_service_app(spec)
    install_docs(app, settings, table, proxy)
    own_paths = frozenset(
        p for r in app.router.routes if isinstance(p := getattr(r, "path", None), str)
    )
    # Inside ObservabilityMiddleware (added by the factory, outermost), so refused
    # preflights and every response still get a request id, a log line and metrics.
    app.user_middleware.append(
        Middleware(
            GatewayEdge,
            proxy=proxy,
            own_paths=own_paths,
            hsts_seconds=settings.hsts_seconds,
            cors=_cors_options(settings),
            operator_port=settings.operator_port,
            operator_networks=settings.operator_networks,
        )
    )
    return app


def _cors_options(settings: GatewaySettings) -> dict[str, Any]:
    origins = list(settings.cors_origins)
    cors: dict[str, Any] = {
        "allow_origins": origins,
        # Credentials only with explicit origins, never with "*".
        "allow_credentials": bool(origins) and "*" not in origins,
        "allow_methods": ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"],
        "allow_headers": [
            "Authorization",
            "Content-Type",
            "X-Request-ID",
            "If-None-Match",
            "If-Match",
            # Auth's device token, for apps on another origin (docs/auth.md), and the
            # catalog's create retries.
            "X-Device-Token",
            "Idempotency-Key",
        ],
        "expose_headers": [
            "X-Request-ID",
            "ETag",
            "Link",
            "Retry-After",
            "RateLimit-Limit",
            "RateLimit-Remaining",
            "RateLimit-Reset",
        ],
        "max_age": 600,
    }
    return cors
