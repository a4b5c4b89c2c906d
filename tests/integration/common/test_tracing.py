"""With tracing on, one request yields one trace: the ASGI span, PostgreSQL and Redis."""

from __future__ import annotations

from fastapi import APIRouter, Request
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import text

from services.common.app import ServiceSpec, create_app
from services.common.db import SessionDep
from services.common.settings import CommonSettings
from tests.support.asgi import running
from tests.support.infra import Infra

router = APIRouter()


@router.get("/traced")
async def traced(request: Request, session: SessionDep) -> dict[str, int]:
    await request.app.state.redis.get("tracing-probe")
    value = (await session.exec(text("SELECT 41 + 1"))).scalar_one()  # type: ignore[call-overload]
    return {"value": value}


async def test_one_trace_spans_request_database_and_redis(infra: Infra) -> None:
    exporter = InMemorySpanExporter()
    settings = CommonSettings(database_url=infra.database_url, redis_url=infra.redis_url)
    app = create_app(
        ServiceSpec(name="kit", settings=settings, routers=[router], span_exporter=exporter)
    )
    parent_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with running(app) as client:
        response = await client.get(
            "/traced", headers={"traceparent": f"00-{parent_trace}-00f067aa0ba902b7-01"}
        )
    assert response.json() == {"value": 42}
    spans = exporter.get_finished_spans()
    kinds = {s.name.split()[0] for s in spans}
    assert any(s.attributes.get("db.system") == "postgresql" for s in spans), kinds
    assert any(s.attributes.get("db.system") == "redis" for s in spans), kinds
    trace_ids = {format(s.context.trace_id, "032x") for s in spans}
    # The incoming traceparent (from the gateway) is continued, not replaced.
    assert trace_ids == {parent_trace}
