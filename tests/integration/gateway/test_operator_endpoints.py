"""Issue 18: /metrics and /readyz of the gateway are for operators only (the operator
listener, or a client in the operator networks); /healthz, /docs and /openapi.json
stay public."""

from __future__ import annotations

import httpx

from gateway.app import create_app
from tests.integration.gateway.conftest import make_settings, routes_for, serving
from tests.integration.gateway.upstream import Upstream
from tests.support.infra import Infra
from tests.support.tokens import jwks_fetcher


def _client(app: object, ip: str, port: int = 8000) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(ip, 40000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url=f"http://gw.test:{port}")


async def test_operator_endpoints_refuse_the_public(
    infra: Infra, upstreams: dict[str, Upstream]
) -> None:
    settings = make_settings(infra, routes_for(upstreams), operator_port=9000)
    app = create_app(settings, jwks_fetcher=jwks_fetcher)
    async with serving(app):
        async with _client(app, "203.0.113.5") as public:
            for path in ("/metrics", "/readyz"):
                refused = await public.get(path)
                assert refused.status_code == 404, path
                assert refused.headers["content-type"] == "application/problem+json"
                assert "gateway_" not in refused.text and upstreams["auth"].url not in refused.text
            for path in ("/healthz", "/openapi.json", "/docs"):
                assert (await public.get(path)).status_code == 200, path
        # The same address on the operator listener (Prometheus in compose/k8s).
        async with _client(app, "10.1.2.3", port=9000) as prometheus:
            metrics = await prometheus.get("/metrics")
            assert metrics.status_code == 200 and "gateway_upstream_healthy" in metrics.text
            assert (await prometheus.get("/readyz")).status_code == 200
        # The machine itself (make run, the container health check).
        async with _client(app, "127.0.0.1") as local:
            assert (await local.get("/metrics")).status_code == 200
            assert (await local.get("/readyz")).status_code == 200


async def test_without_an_operator_port_only_operator_networks_get_them(
    infra: Infra, upstreams: dict[str, Upstream]
) -> None:
    settings = make_settings(infra, routes_for(upstreams), operator_networks=["192.0.2.0/24"])
    app = create_app(settings, jwks_fetcher=jwks_fetcher)
    async with serving(app):
        async with _client(app, "192.0.2.7", port=9000) as operator:
            assert (await operator.get("/metrics")).status_code == 200
        async with _client(app, "127.0.0.1", port=9000) as local:
            # Loopback is only in the default list; port 9000 is not the operator port.
            assert (await local.get("/metrics")).status_code == 404
