"""Gateway benchmark: what does the extra hop cost, and why aiohttp?

    python -m tools.bench.gateway_bench [--duration 10] [--connections 64]

Starts, each under gunicorn with ONE uvicorn worker: an upstream returning a constant
JSON body (like a cached read), the real gateway in front of it (public catalog read:
edge auth + a Redis rate-limit hit + proxy), and two bare proxies with the same raw
ASGI code, one on aiohttp and one on httpx.AsyncClient. Loads each with wrk (or the
Python aiohttp generator in its own process) and prints req/s, p50, p99 and the p50
the hop adds. Needs Redis (REDIS_URL, default redis://127.0.0.1:6379/0).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tools.bench import generators
from tools.bench.loadspec import Load, Req, Result
from tools.devstack.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
PATH = "/api/v1/catalog/products/constant"
BODY = (
    b'{"id":"7d1c5a0e-4d7b-4a8e-9a51-2b9b6f3c1e11","sku":"SKU-1","name":"A product",'
    b'"price":"19.99","currency":"EUR","stock":12,"status":"active"}'
)
HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"transfer-encoding",
    b"te",
    b"upgrade",
    b"trailer",
    b"host",
    b"date",
    b"server",
}
Asgi = Callable[..., Any]


# --- the apps gunicorn runs -------------------------------------------------------


def upstream_app() -> Asgi:
    from fastapi import FastAPI, Response

    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(PATH)
    async def constant() -> Response:
        return Response(BODY, media_type="application/json")

    return app


def _bare_proxy(send_upstream: Callable[..., Any]) -> Asgi:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        status, headers, body = await send_upstream(scope)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def aiohttp_proxy_app() -> Asgi:
    import aiohttp

    base = os.environ["BENCH_UPSTREAM"]
    holder: dict[str, aiohttp.ClientSession] = {}

    async def forward(scope: dict[str, Any]) -> tuple[int, list[Any], bytes]:
        if "s" not in holder:
            holder["s"] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=4, ttl_dns_cache=300),
                auto_decompress=False,
            )
        async with holder["s"].get(base + scope["path"]) as r:
            body = await r.read()
            return r.status, [(k, v) for k, v in r.raw_headers if k.lower() not in HOP_BY_HOP], body

    return _bare_proxy(forward)


def httpx_proxy_app() -> Asgi:
    base = os.environ["BENCH_UPSTREAM"]
    holder: dict[str, httpx.AsyncClient] = {}

    async def forward(scope: dict[str, Any]) -> tuple[int, list[Any], bytes]:
        if "c" not in holder:
            holder["c"] = httpx.AsyncClient(
                limits=httpx.Limits(
                    max_connections=256, max_keepalive_connections=256, keepalive_expiry=4
                )
            )
        r = await holder["c"].get(base + scope["path"])
        return (
            r.status_code,
            [(k, v) for k, v in r.headers.raw if k.lower() not in HOP_BY_HOP],
            r.content,
        )

    return _bare_proxy(forward)


# --- running them -----------------------------------------------------------------


class Proc:
    def __init__(self, name: str, factory: str, env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {
            **os.environ,
            **env,
            "BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": "1",
            "MAX_REQUESTS": "0",
            "LOG_LEVEL": "warning",
            "ENVIRONMENT": "development",
            "PYTHONPATH": str(ROOT),
            "PROMETHEUS_MULTIPROC_DIR": str(workdir / f"prom-{name}"),
        }
        self.log = workdir / f"{name}.log"
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), factory],
            env=full_env,
            cwd=ROOT,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + PATH, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.popen.poll() is not None:
                self.stop()
                raise RuntimeError(f"{name} did not start: {self.log.read_text()[-800:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()


def measure(generator: str, url: str, connections: int, duration: float) -> Result:
    load = Load(
        base_url=url,
        requests=[Req("GET", PATH)],
        connections=connections,
        duration=duration,
        threads=1,
    )
    generators.run(generator, load)  # warm-up (pools, caches), not counted
    return generators.run(generator, Load(**{**load.__dict__, "duration": duration}))


def main(argv: list[str] | None = None) -> dict[str, Result]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args(argv)
    generator = generators.choose(args.generator)
    results: dict[str, Result] = {}
    with tempfile.TemporaryDirectory(prefix="gwbench-") as tmp:
        workdir = Path(tmp)
        upstream = Proc("upstream", "tools.bench.gateway_bench:upstream_app()", {}, workdir)
        procs = [upstream]
        try:
            proxied_env = {"BENCH_UPSTREAM": upstream.url}
            gateway_env = {
                "REDIS_URL": args.redis_url,
                "GATEWAY_ROUTES": f'{{"/api/v1/catalog": ["{upstream.url}"]}}',
                "GATEWAY_RATE_ANONYMOUS": "1000000000/minute",  # counted, never refused
                "JWKS_URL": f"{upstream.url}/.well-known/jwks.json",
            }
            targets = {"direct (upstream)": upstream.url}
            for name, factory, env in (
                ("gateway (full)", "gateway.app:create_app()", gateway_env),
                (
                    # What the rate-limit count costs the latency (it overlaps reads).
                    "gateway, no rate limit",
                    "gateway.app:create_app()",
                    {**gateway_env, "GATEWAY_RATE_LIMIT_ENABLED": "false"},
                ),
                (
                    "bare proxy, aiohttp",
                    "tools.bench.gateway_bench:aiohttp_proxy_app()",
                    proxied_env,
                ),
                ("bare proxy, httpx", "tools.bench.gateway_bench:httpx_proxy_app()", proxied_env),
            ):
                proc = Proc(name.split()[0] + str(len(procs)), factory, env, workdir)
                procs.append(proc)
                targets[name] = proc.url
            for name, url in targets.items():
                results[name] = measure(generator, url, args.connections, args.duration)
        finally:
            for proc in procs:
                proc.stop()
    _print(results, generator, args)
    return results


def _print(results: dict[str, Result], generator: str, args: argparse.Namespace) -> None:
    direct = results["direct (upstream)"]
    print(
        f"\n{generator}, {args.connections} connections, {args.duration:.0f} s per target, "
        f"{os.cpu_count()} cores, 1 gunicorn worker per process\n"
    )
    print("| target | req/s | p50 ms | p99 ms | added p50 ms | non-2xx | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        non_2xx = sum(n for code, n in r.statuses.items() if not 200 <= code < 300)
        added = "" if r is direct else f"{r.p50 - direct.p50:+.2f}"
        print(
            f"| {name} | {r.rps:,.0f} | {r.p50:.2f} | {r.p99:.2f} | {added} | {non_2xx} "
            f"| {r.errors} |"
        )


if __name__ == "__main__":
    main()
