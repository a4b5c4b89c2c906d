"""OpenTelemetry tracing: off by default, on with OTEL_ENABLED=true.

Spans cover the incoming request (ASGI), outgoing HTTP (aiohttp: the gateway's
upstream calls carry `traceparent`, so one trace spans gateway -> service),
PostgreSQL (SQLAlchemy) and Redis. The exporter is OTLP over HTTP; its endpoint
comes from the standard OTEL_EXPORTER_OTLP_ENDPOINT variable.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

_provider: Any = None


def setup_tracing(service: str, exporter: Any = None) -> Any:
    """Install a global tracer provider once per process; returns it. An exporter given
    after that (a test's in-memory one) is added to the installed provider."""
    global _provider
    if _provider is not None:
        if exporter is not None:
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor

            _provider.add_span_processor(SimpleSpanProcessor(exporter))
        return _provider
    from opentelemetry import trace
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    RedisInstrumentor().instrument(tracer_provider=provider)
    AioHttpClientInstrumentor().instrument(tracer_provider=provider)
    _provider = provider
    return provider


def instrument_app(app: FastAPI, service: str, exporter: Any = None) -> None:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    provider = setup_tracing(service, exporter)
    app.add_middleware(
        OpenTelemetryMiddleware, tracer_provider=provider, exclude_spans=["receive", "send"]
    )


def instrument_engine(engine: AsyncEngine) -> None:
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    # SQLAlchemy 2.1 is newer than the instrumentation declares; its engine events still work.
    SQLAlchemyInstrumentor().instrument(
        engine=engine.sync_engine, tracer_provider=_provider, skip_dep_check=True
    )
