"""Security headers on every response the gateway sends, proxied or its own."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, hsts_seconds: int) -> None:
        self.app = app
        self.fixed = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
        ]
        if hsts_seconds > 0:
            self.fixed.append(
                (
                    b"strict-transport-security",
                    f"max-age={hsts_seconds}; includeSubDomains".encode(),
                )
            )
        self._names = {name for name, _ in self.fixed} | {b"content-security-policy"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        csp = DOCS_CSP if path.startswith("/docs") else API_CSP
        no_store = path.startswith(NO_STORE_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                drop = self._names | ({b"cache-control", b"pragma"} if no_store else set())
                headers = [(n, v) for n, v in message.get("headers", ()) if n.lower() not in drop]
                headers += self.fixed
                headers.append((b"content-security-policy", csp))
                if no_store:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
