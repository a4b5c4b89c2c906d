"""The gateway's API documentation: the merged /openapi.json and Swagger UI at /docs.

Swagger UI's script and styles come from a Python package (fastapi-offline ships
them) and are served by the gateway itself under /docs/assets: the page works in an
air-gapped cluster, behind a strict proxy or offline, and its Content-Security-Policy
(gateway.security_headers.DOCS_CSP) allows nothing but the gateway. For that the page
has no inline script: its start-up code is /docs/swagger-init.js.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from gateway.openapi import OpenApiCache
from gateway.proxy import Proxy
from gateway.routing import RoutingTable
from gateway.settings import GatewaySettings

ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs/assets"
TITLE = "shopstack API"

DOCS_HTML = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{TITLE}</title>
<link rel="icon" type="image/png" href="{ASSETS_URL}/favicon.png">
<link rel="stylesheet" href="{ASSETS_URL}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="/openapi.json"></div>
<script src="{ASSETS_URL}/swagger-ui-bundle.js"></script>
<script src="/docs/swagger-init.js"></script>
</body>
</html>
"""

# validatorUrl: null, or Swagger UI asks validator.swagger.io for a badge.
INIT_JS = """window.ui = SwaggerUIBundle({
  url: document.getElementById("swagger-ui").dataset.openapiUrl,
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  deepLinking: true,
  displayOperationId: true,
  showExtensions: true,
  showCommonExtensions: true,
  validatorUrl: null,
});
"""


def docs_router(settings: GatewaySettings, table: RoutingTable, proxy: Proxy) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    cache = OpenApiCache(table, ttl=settings.openapi_cache_seconds)

    @router.get("/openapi.json")
    async def openapi(request: Request) -> JSONResponse:
        assert proxy.session is not None
        return JSONResponse(await cache.get(proxy.session, request.app.openapi()))

    if settings.docs_enabled:

        @router.get("/docs")
        async def docs() -> HTMLResponse:
            return HTMLResponse(DOCS_HTML)

        @router.get("/docs/swagger-init.js")
        async def swagger_init() -> Response:
            return Response(INIT_JS, media_type="text/javascript")

    return router


def install_docs(
    app: FastAPI, settings: GatewaySettings, table: RoutingTable, proxy: Proxy
) -> None:
    """Replace FastAPI's own /openapi.json and /docs (a CDN page) by the merged document
    and the packaged Swagger UI."""
    app.router.routes[:] = [
        r
        for r in app.router.routes
        if getattr(r, "path", None) not in ("/openapi.json", "/docs", "/docs/oauth2-redirect")
    ]
    app.include_router(docs_router(settings, table, proxy))
    if settings.docs_enabled:
        app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
