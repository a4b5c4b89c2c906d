"""Security headers on every response the gateway sends, proxied or its own (applied by
gateway.edge.GatewayEdge)."""

from __future__ import annotations

# API responses are JSON: nothing may load, nothing may frame them.
API_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
# Swagger UI (gateway/docs.py): everything from the gateway itself, no inline script.
DOCS_CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    b"font-src 'self'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; "
    b"base-uri 'none'"
)
NO_STORE_PREFIXES = ("/api/v1/auth",)  # tokens in bodies: never cached anywhere
