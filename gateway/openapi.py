"""One OpenAPI document for the whole API: every upstream's /openapi.json merged.

Only paths the routing table sends to that upstream are kept (each service's own
/healthz etc. are not reachable through the gateway). A component name used by two
services for different things is prefixed with the service name (and every $ref of
that service rewritten). Operations get `bearerAuth`, public ones `security: []`, and
every one the problem responses the gateway itself may give (services.common.openapi).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import importlib
import json
import logging
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from gateway.edge_auth import is_public
from gateway.routing import RoutingTable, Upstream
from services.common.openapi import document_problems, gateway_statuses

log = logging.getLogger("gateway.openapi")

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
BEARER = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
# Descriptions of the operations' tags (Swagger UI's sections, the Python client's modules).
TAG_DESCRIPTIONS = {
    "auth": "Accounts, sign-in, tokens and sessions",
    "users": "Profiles and the user directory",
    "catalog": "Products and categories",
    "health": "The gateway's liveness and readiness",
}
FAILED_RETRY_SECONDS = 5.0  # an incomplete document is refetched soon, not after the TTL


def _rewrite_refs(node: Any, renames: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value in renames:
                out[key] = renames[value]
            else:
                out[key] = _rewrite_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v, renames) for v in node]
    return node


def _prefix_name(service: str) -> str:
    return "".join(part.capitalize() for part in service.replace("-", "_").split("_"))


def merge(
    docs: Mapping[str, Mapping[str, Any]],
    table: RoutingTable,
    *,
    base: Mapping[str, Any],
) -> dict[str, Any]:
    """`docs`: upstream name -> its OpenAPI document; `base`: the gateway's own document."""
    merged = copy.deepcopy(dict(base))
    paths: dict[str, Any] = merged.setdefault("paths", {})
    components: dict[str, dict[str, Any]] = merged.setdefault("components", {})
    tags: list[dict[str, Any]] = merged.setdefault("tags", [])
    for service, doc in docs.items():
        renames: dict[str, str] = {}
        for section, entries in (doc.get("components") or {}).items():
            existing = components.get(section, {})
            for name, value in entries.items():
                if name in existing and existing[name] != value:
                    new = f"{_prefix_name(service)}{name}"
                    renames[f"#/components/{section}/{name}"] = f"#/components/{section}/{new}"
        doc = _rewrite_refs(doc, renames)
        for section, entries in (doc.get("components") or {}).items():
            target = components.setdefault(section, {})
            for name, value in entries.items():
                ref = renames.get(f"#/components/{section}/{name}")
                target[ref.rsplit("/", 1)[-1] if ref else name] = value
        for path, item in (doc.get("paths") or {}).items():
            route = table.match(path)
            if route is None or route.upstream.name != _upstream_of(table, service).name:
                continue  # not reachable through the gateway
            paths[path] = item
        known = {t.get("name") for t in tags}
        tags.extend(t for t in doc.get("tags", []) if t.get("name") not in known)
    # Every operation is given `bearerAuth` below, so the services' own schemes (auth's
    # OAuth2PasswordBearer, whose relative tokenUrl is not a URL as OpenAPI requires)
    # would only be unused, invalid definitions.
    components["securitySchemes"] = {"bearerAuth": BEARER}
    for path, item in paths.items():
        for method in HTTP_METHODS:
            operation = item.get(method)
            if isinstance(operation, dict):
                public = is_public(method.upper(), path)
                operation["security"] = [] if public else [{"bearerAuth": []}]
    known = {t.get("name") for t in tags}
    for item in paths.values():
        for method in HTTP_METHODS:
            for tag in (item.get(method) or {}).get("tags", []):
                if tag not in known:
                    known.add(tag)
                    tags.append({"name": tag, "description": TAG_DESCRIPTIONS.get(tag, "")})
    order = list(TAG_DESCRIPTIONS)
    tags.sort(key=lambda t: order.index(t["name"]) if t.get("name") in order else len(order))
    # The gateway's own answers (edge auth, rate limits, body limit, upstream failures)
    # on top of what each service documents.
    document_problems(
        merged, lambda method, path, _: not is_public(method.upper(), path), gateway_statuses
    )
    if not tags:
        merged.pop("tags")
    return merged


def _upstream_of(table: RoutingTable, name: str) -> Upstream:
    return next(u for u in table.upstreams if u.name == name)


class OpenApiCache:
    """The merged document, fetched from the upstreams at most once per TTL."""

    def __init__(self, table: RoutingTable, ttl: float, timeout: float = 3.0) -> None:
        self.table = table
        self.ttl = ttl
        self.timeout = timeout
        self._doc: dict[str, Any] | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def get(self, session: aiohttp.ClientSession, base: Mapping[str, Any]) -> dict[str, Any]:
        async with self._lock:
            if self._doc is None or time.monotonic() >= self._expires:
                docs = await self._fetch_all(session)
                self._doc = merge(docs, self.table, base=base)
                complete = len(docs) == len(self.table.upstreams)
                self._expires = time.monotonic() + (self.ttl if complete else FAILED_RETRY_SECONDS)
            return self._doc

    async def _fetch_all(self, session: aiohttp.ClientSession) -> dict[str, dict[str, Any]]:
        results = await asyncio.gather(*(self._fetch(session, u) for u in self.table.upstreams))
        return {u.name: d for u, d in zip(self.table.upstreams, results, strict=True) if d}

    async def _fetch(self, session: aiohttp.ClientSession, upstream: Upstream) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        for inst in sorted(upstream.instances, key=lambda i: not i.healthy):
            try:
                async with session.get(inst.url + "/openapi.json", timeout=timeout) as response:
                    if response.status == 200:
                        data: dict[str, Any] = await response.json()
                        return data
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                log.warning(
                    "openapi of %s at %s unavailable: %s",
                    upstream.name,
                    inst.url,
                    type(exc).__name__,
                )
        return {}


def build_in_process(upstream_apps: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The merged document with no server running: every upstream's app (and the
    gateway's) is built in this process and asked for its document, as the gateway asks
    the running upstreams for theirs. `upstream_apps`: upstream name -> module with a
    `create_app()` (default: `services.<name>.app`). What `make clients` generates from.
    """
    from gateway.app import create_app as create_gateway  # the app module imports this one
    from gateway.settings import GatewaySettings

    settings = GatewaySettings()
    table = RoutingTable(settings.route_table, failure_threshold=1, open_seconds=1.0)
    modules = dict(upstream_apps or {u.name: f"services.{u.name}.app" for u in table.upstreams})
    docs = {
        name: importlib.import_module(module).create_app().openapi()
        for name, module in modules.items()
    }
    # A JSON round trip, as over HTTP: the same document the live gateway serves.
    docs = json.loads(json.dumps(docs))
    base = json.loads(json.dumps(create_gateway(settings).openapi()))
    return merge(docs, table, base=base)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.openapi",
        description="Write the gateway's merged OpenAPI document, built in process.",
    )
    parser.add_argument("--out", type=Path, default=None, help="default: standard output")
    args = parser.parse_args(argv)
    text = json.dumps(build_in_process(), indent=2, ensure_ascii=False) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
