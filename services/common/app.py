"""The app factory every service and the gateway use: one lifespan owns the engine,
the Redis client, the token verifier and the background tasks, and closes them."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI

from services.common import leanredis
from services.common.db import create_engine, session_factory
from services.common.errors import install_error_handlers
from services.common.health import ReadinessCheck, check_database, check_redis, health_router
from services.common.jwt import JwksCache, JwksFetcher, TokenVerifier, http_jwks_fetcher
from services.common.logging import configure_logging
from services.common.middleware import ObservabilityMiddleware
from services.common.openapi import install_problem_docs, operation_ids
from services.common.redis import create_redis
from services.common.settings import CommonSettings
from services.common.tracing import instrument_app, instrument_engine

Hook = Callable[[FastAPI], Awaitable[None]]
Task = Callable[[FastAPI], Coroutine[Any, Any, None]]
log = logging.getLogger("services.app")
# A background task still running this long after its cancel is named in the log once
# per period: a stop that never ends is then visible instead of a silent hang.
STOP_WARN_SECONDS = 30.0


async def stop_background(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancel the app's background tasks and wait for every one of them to end."""
    for task in tasks:
        task.cancel()
    pending = set(tasks)
    while pending:
        _, pending = await asyncio.wait(pending, timeout=STOP_WARN_SECONDS)
        if pending:
            names = ", ".join(sorted(t.get_name() for t in pending))
            log.warning("background tasks still stopping after their cancel: %s", names)
    await asyncio.gather(*tasks, return_exceptions=True)  # collect their exceptions


@dataclass
class ServiceSpec:
    """What makes one service different from the others."""

    name: str
    settings: CommonSettings
    routers: Sequence[APIRouter] = ()
    title: str = ""
    description: str = ""
    version: str = "1.0.0"
    use_database: bool = True
    on_startup: Sequence[Hook] = ()
    on_shutdown: Sequence[Hook] = ()
    # Long-running coroutines (outbox relay, event consumers): started after startup
    # hooks, cancelled at shutdown.
    background: Sequence[Task] = ()
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)
    jwks_fetcher: JwksFetcher | None = None
    # Tests pass an in-memory span exporter; production uses OTLP (settings.otel_enabled).
    span_exporter: Any = None
    # The gateway's FastAPI subclass (its proxied requests skip FastAPI's outer layers).
    app_class: type[FastAPI] = FastAPI


Lifespan = Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]


def _lifespan(spec: ServiceSpec) -> Lifespan:
    settings = spec.settings

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.redis = create_redis(settings.redis_url, settings.redis_timeout)
        leanredis.ENABLED = settings.redis_lean  # before any startup hook asks for it
        if spec.use_database:
            app.state.engine = create_engine(settings)
            app.state.session_factory = session_factory(app.state.engine)
            if tracing_on(spec):
                instrument_engine(app.state.engine)
        fetcher = spec.jwks_fetcher or http_jwks_fetcher(settings.jwks_url)
        app.state.token_verifier = TokenVerifier(
            JwksCache(fetcher, max_age=settings.jwks_cache_seconds),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway=settings.jwt_leeway_seconds,
        )
        tasks: list[asyncio.Task[None]] = []
        try:
            for hook in spec.on_startup:
                await hook(app)
            for job in spec.background:
                tasks.append(asyncio.create_task(job(app), name=getattr(job, "__name__", "bg")))
            app.state.background_tasks = tasks
            # Everything built so far (modules, routes, models, pools) lives as long as
            # the worker: out of the collector's sight, a full collection walks only
            # what requests create (its pause was a cached read's p99: docs/performance.md).
            gc.freeze()
            yield
        finally:
            await stop_background(tasks)
            for hook in spec.on_shutdown:
                try:
                    await hook(app)
                except Exception:
                    log.exception("shutdown hook failed")
            await app.state.redis.aclose()
            if spec.use_database:
                await app.state.engine.dispose()

    return lifespan


def create_app(spec: ServiceSpec) -> FastAPI:
    configure_logging(spec.name, spec.settings.log_level)
    app = spec.app_class(
        title=spec.title or f"{spec.name} service",
        description=spec.description,
        version=spec.version,
        lifespan=_lifespan(spec),
        docs_url="/docs" if spec.settings.is_development else None,
        redoc_url=None,
        generate_unique_id_function=operation_ids(spec.name),
        # FastAPI's own OpenTelemetry layer stays off: spans come from our ASGI middleware
        # (OTEL_ENABLED), metrics from Prometheus; on, it looks up the global providers
        # on every request (~3 % of a proxied read's CPU in the gateway).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    install_problem_docs(app)
    checks: dict[str, ReadinessCheck] = {}
    if spec.use_database:
        checks["database"] = check_database
    checks["redis"] = check_redis
    checks.update(spec.readiness)
    app.include_router(health_router(checks))
    for router in spec.routers:
        app.include_router(router)
    app.add_middleware(ObservabilityMiddleware, service=spec.name)
    if tracing_on(spec):
        instrument_app(app, spec.name, spec.span_exporter)
    return app


def tracing_on(spec: ServiceSpec) -> bool:
    return spec.settings.otel_enabled or spec.span_exporter is not None
