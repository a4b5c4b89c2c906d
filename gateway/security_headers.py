"""Security headers on every response the gateway sends, proxied or its own (applied by
gateway.edge.GatewayEdge)."""

from __future__ import annotations

# API responses are JSON: nothing may load, nothing may frame them.
API_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
# Swagger UI: its bundle from jsDelivr, inline init script and styles.
DOCS_CSP = (
    b"default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; "
    b"frame-ancestors 'none'; base-uri 'none'"
)
NO_STORE_PREFIXES = ("/api/v1/auth",)  # tokens in bodies: never cached anywhere
