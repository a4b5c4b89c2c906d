"""Small real upstreams for the gateway tests: FastAPI apps under uvicorn on real
sockets (a thread each), which echo what they received and can misbehave on demand."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, create_model
from starlette.requests import ClientDisconnect

from tools.devstack.embedded import free_port

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@dataclass
class Behaviour:
    """Shared between the test and the server thread (plain attributes: GIL-safe)."""

    name: str
    hits: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    fail_status: int | None = None  # answer every API call with this status
    fail_headers: dict[str, str] = field(default_factory=dict)  # ...and these headers
    fail_body: dict[str, Any] | None = None  # ...and this JSON body ({"failing": true})
    fail_suffix: str = ""  # ...only for paths ending with this
    healthy: bool = True

    def count(self, method: str | None = None, suffix: str = "") -> int:
        return sum(1 for m, p in self.hits if (method in (None, m)) and p.endswith(suffix))


def build_app(behaviour: Behaviour, prefix: str) -> FastAPI:
    app = FastAPI(title=behaviour.name)
    # A schema whose name collides across upstreams with a different shape.
    item = create_model("Item", **{f"{behaviour.name}_field": (str, ...)}, __base__=BaseModel)

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(status_code=200 if behaviour.healthy else 503)

    @app.get(prefix + "/items/{item_id}", response_model=item)
    async def one_item(item_id: str) -> Any:
        return {f"{behaviour.name}_field": item_id}

    @app.api_route("/{path:path}", methods=METHODS, include_in_schema=False)
    async def echo(path: str, request: Request) -> Response:
        behaviour.hits.append((request.method, request.url.path))
        if behaviour.fail_status is not None and request.url.path.endswith(behaviour.fail_suffix):
            return JSONResponse(
                behaviour.fail_body or {"failing": True},
                status_code=behaviour.fail_status,
                headers=behaviour.fail_headers,
            )
        last = request.url.path.rsplit("/", 1)[-1]
        if last == "slow":
            await asyncio.sleep(float(request.query_params.get("s", "2")))
        elif last == "error":
            return JSONResponse({"boom": True}, status_code=500)
        elif last == "stream":
            return StreamingResponse(_stream(), media_type="text/plain")
        elif last == "vary":
            return JSONResponse({"ok": True}, headers={"Vary": "Accept-Language"})
        elif last == "cookies":
            response = JSONResponse({"ok": True})
            response.set_cookie("a", "1")
            response.set_cookie("b", "2")
            response.headers["proxy-authenticate"] = "Basic"
            response.headers["keep-alive"] = "timeout=5"
            return response
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
        except ClientDisconnect:  # the gateway aborted an upload over its limit
            return Response(status_code=499)
        return JSONResponse(
            {
                "instance": behaviour.name,
                "method": request.method,
                "path": request.url.path,
                "raw_path": request.scope["raw_path"].decode("latin-1"),
                "query": request.scope["query_string"].decode("latin-1"),
                "headers": [
                    [k.decode("latin-1"), v.decode("latin-1")] for k, v in request.scope["headers"]
                ],
                "body_size": size,
            }
        )

    return app


async def _stream() -> Any:
    yield b"first-chunk\n"
    await asyncio.sleep(0.6)
    yield b"second-chunk\n"


class ServerThread:
    """uvicorn serving an app in a thread; can be stopped and started on the same port."""

    def __init__(self, app: Any, port: int | None = None, *, lifespan: str = "on") -> None:
        self.app = app
        self.lifespan = lifespan
        self.port = port or free_port()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerThread:
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan=self.lifespan,
            timeout_keep_alive=5,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"server on {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
            self._server = None


@dataclass
class Upstream:
    behaviour: Behaviour
    server: ServerThread

    @property
    def url(self) -> str:
        return self.server.url


def start_upstream(name: str, prefix: str) -> Upstream:
    behaviour = Behaviour(name)
    return Upstream(behaviour, ServerThread(build_app(behaviour, prefix), lifespan="off").start())


class DroppingServer:
    """Answers /healthz, drops every other request's connection without a byte:
    a connection error "before any response byte", the case retries are for."""

    def __init__(self) -> None:
        self.hits = 0
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if head.split(b" ", 2)[1] == b"/healthz":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            await writer.drain()
        else:
            self.hits += 1
        writer.close()

    def start(self) -> DroppingServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", self.port), self._loop
        ).result(5)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
