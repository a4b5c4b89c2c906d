"""The two ceilings every scenario is compared with, served by the same gunicorn config:

    gunicorn -c deploy/gunicorn.conf.py 'tools.bench.baselines:fastapi_app()'
    gunicorn -c deploy/gunicorn.conf.py 'tools.bench.baselines:raw_app()'

`fastapi_app` is a bare FastAPI endpoint returning a constant (the framework's ceiling
on this machine); `raw_app` is a plain ASGI callable (the ceiling of Python + uvicorn).
Both answer the same small JSON body so only the stack under them differs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response

BODY = b'{"status":"ok"}'
PATH = "/constant"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def fastapi_app() -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get(PATH)
    async def constant() -> Response:
        return Response(BODY, media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(BODY, media_type="application/json")

    return app


_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def _raw(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def raw_app() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    return _raw
