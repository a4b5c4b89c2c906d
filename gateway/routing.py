"""The routing table: path prefix -> upstream; round robin over an upstream's instances,
skipping those that failed their last health check or whose circuit is open."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import aiohttp

from gateway import metrics
from gateway.circuit import CircuitBreaker, CircuitState
from services.common.cancel import pause
from services.common.middleware import RouteLabel

log = logging.getLogger("gateway.routing")


@dataclass(eq=False)
class Instance:
    upstream: str
    url: str
    breaker: CircuitBreaker
    healthy: bool = True  # optimistic until the first poll says otherwise

    def set_healthy(self, healthy: bool) -> None:
        if healthy != self.healthy:
            log.warning(
                "upstream %s instance %s is %s",
                self.upstream,
                self.url,
                "healthy" if healthy else "unhealthy",
            )
        self.healthy = healthy
        metrics.UPSTREAM_HEALTHY.labels(self.upstream, self.url).set(1 if healthy else 0)


@dataclass(eq=False)
class Upstream:
    name: str
    instances: list[Instance]
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def pick(self, exclude: Sequence[Instance] = ()) -> Instance | None:
        """The next healthy instance whose circuit lets a request through, round robin."""
        n = len(self.instances)
        start = next(self._counter)
        for i in range(n):
            inst = self.instances[(start + i) % n]
            if inst in exclude or not inst.healthy:
                continue
            if inst.breaker.allow():
                return inst
        return None

    @property
    def any_healthy(self) -> bool:
        return any(i.healthy for i in self.instances)

    def retry_after(self) -> int:
        """When every usable instance has an open circuit: seconds until one may probe."""
        waits = [i.breaker.retry_after() for i in self.instances if i.healthy]
        return max(1, int(min(waits, default=1.0) + 0.999))


@dataclass(frozen=True, slots=True)
class Route:
    prefix: str
    upstream: Upstream
    # The metrics/logs label: a template, never the raw path (bounded cardinality).
    # Computed once: it is read on every proxied request.
    label: str = field(init=False)
    scope_route: RouteLabel = field(init=False)

    def __post_init__(self) -> None:
        label = self.prefix.rstrip("/") + "/{path}"
        object.__setattr__(self, "label", label)
        object.__setattr__(self, "scope_route", RouteLabel(label))


def _name_for(prefix: str) -> str:
    last = prefix.rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[^a-z0-9_-]", "", last.lower().lstrip(".")) or "root"


class RoutingTable:
    def __init__(
        self, routes: Mapping[str, Sequence[str]], *, failure_threshold: int, open_seconds: float
    ) -> None:
        by_urls: dict[tuple[str, ...], Upstream] = {}
        self.routes: list[Route] = []
        for prefix, urls in routes.items():
            key = tuple(urls)
            upstream = by_urls.get(key)
            if upstream is None:
                # Routes with the same instances share one upstream (and its breakers).
                name = _name_for(prefix)
                upstream = Upstream(
                    name,
                    [
                        Instance(
                            name, url, self._breaker(name, url, failure_threshold, open_seconds)
                        )
                        for url in urls
                    ],
                )
                for inst in upstream.instances:
                    metrics.UPSTREAM_HEALTHY.labels(name, inst.url).set(1)
                by_urls[key] = upstream
            self.routes.append(Route(prefix.rstrip("/") or "/", upstream))
        # Longest prefix first, so /api/v1/auth/x never lands on a shorter /api route.
        self.routes.sort(key=lambda r: len(r.prefix), reverse=True)
        self.upstreams: list[Upstream] = list(by_urls.values())

    @staticmethod
    def _breaker(name: str, url: str, threshold: int, open_seconds: float) -> CircuitBreaker:
        gauge = metrics.CIRCUIT_STATE.labels(name, url)
        gauge.set(CircuitState.closed)

        def on_change(state: CircuitState) -> None:
            log.warning("circuit of %s instance %s is now %s", name, url, state.name)
            gauge.set(int(state))

        return CircuitBreaker(
            failure_threshold=threshold, open_seconds=open_seconds, on_change=on_change
        )

    def match(self, path: str) -> Route | None:
        for route in self.routes:
            p = route.prefix
            if path == p or path.startswith(p + "/") or p == "/":
                return route
        return None

    @property
    def instances(self) -> list[Instance]:
        return [i for u in self.upstreams for i in u.instances]


async def check_instance(session: aiohttp.ClientSession, inst: Instance, wait: float) -> bool:
    try:
        async with session.get(
            inst.url + "/healthz", timeout=aiohttp.ClientTimeout(total=wait)
        ) as response:
            await response.read()
            return response.status == 200
    except (aiohttp.ClientError, OSError, TimeoutError):
        return False


async def poll_health(
    table: RoutingTable,
    session: aiohttp.ClientSession,
    *,
    interval: float,
    wait: float,
    unhealthy_interval: float,
) -> None:
    """Forever: poll every instance's /healthz concurrently, then sleep: `interval` while
    all are healthy, `unhealthy_interval` while one is not (as Envoy's health checks)."""
    sooner = min(interval, unhealthy_interval)
    while True:
        instances = table.instances
        results = await asyncio.gather(*(check_instance(session, i, wait) for i in instances))
        for inst, ok in zip(instances, results, strict=True):
            inst.set_healthy(ok)
        await pause(interval if all(results) else sooner)
