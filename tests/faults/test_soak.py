"""Soak: steady mixed traffic through the gateway for SOAK_SECONDS (40 s in the suite,
`make soak` runs 600), with the memory (RSS) and open file descriptors of every process
of the stack sampled every few seconds: gunicorn masters and workers, the worker, Redis.

Passes when no request got a 5xx (or no answer), and, per process group, the mean RSS
of the last third of the samples is within 10% (+8 MiB) of the middle third and the
fd count of the last third stays within 10 of the middle third's maximum: memory and
descriptors level off instead of growing with the number of requests served. The
first third is warm-up (imports, pools, caches filling)."""

from __future__ import annotations

import os
import random
import statistics
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil

from tests.faults.helpers import (
    PASSWORD,
    admin_token,
    client,
    headers,
    login,
    new_product,
    register,
)
from tests.support.stack import Stack

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "40"))
SAMPLE_SECONDS = max(2.0, SOAK_SECONDS / 60)
THREADS = 4
PAUSE = 0.02  # per request and thread: steady, not a stress test
RSS_TOLERANCE = 0.10
RSS_SLACK = 8 * 2**20
FD_SLACK = 10
MiB = 2**20


@dataclass
class Traffic:
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, op: str, status: int, seconds: float) -> None:
        with self.lock:
            self.statuses[(op, status)] += 1
            self.latencies.append(seconds)


OPERATIONS = {  # name: weight
    "browse": 30,
    "product": 35,
    "me": 15,
    "refresh": 6,
    "login": 2,
    "profile": 6,
    "stock": 6,
}


def _request(
    http: httpx.Client, gw: str, op: str, me: dict[str, Any], admin: str, pid: str
) -> httpx.Response:
    if op == "browse":
        params: dict[str, str | int] = {"limit": 10, "sort": "newest"}
        if me.get("cursor"):
            params["cursor"] = me["cursor"]
        return http.get(f"{gw}/api/v1/catalog/products", params=params, headers=headers())
    if op == "product":
        return http.get(f"{gw}/api/v1/catalog/products/{pid}", headers=headers())
    if op == "me":
        return http.get(f"{gw}/api/v1/users/me", headers=headers(me["access_token"]))
    if op == "refresh":
        body = {"refresh_token": me["refresh_token"]}
        return http.post(f"{gw}/api/v1/auth/refresh", json=body, headers=headers())
    if op == "login":
        body = {"email": me["email"], "password": PASSWORD}
        return http.post(f"{gw}/api/v1/auth/login", json=body, headers=headers())
    if op == "profile":
        body = {"display_name": f"soak {uuid.uuid4().hex[:8]}"}
        return http.patch(f"{gw}/api/v1/users/me", json=body, headers=headers(me["access_token"]))
    return http.post(
        f"{gw}/api/v1/catalog/products/{pid}/stock", json={"delta": 1}, headers=headers(admin)
    )


def _drive(gw: str, admin: str, products: list[str], stop: threading.Event, out: Traffic) -> None:
    """One client: its own account (refresh tokens rotate; sharing them would look
    like token theft), browsing, reading, refreshing, signing in, a few writes."""
    names, weights = list(OPERATIONS), list(OPERATIONS.values())
    with client(timeout=30) as http:
        email = register(http, gw)
        me: dict[str, Any] = {"email": email, **login(http, gw, email)}
        while not stop.is_set():
            op = random.choices(names, weights=weights)[0]
            started = time.monotonic()
            try:
                response = _request(http, gw, op, me, admin, random.choice(products))
                status = response.status_code
            except httpx.HTTPError:
                status = 0
            out.record(op, status, time.monotonic() - started)
            if status == 200 and op in ("refresh", "login"):
                me.update(response.json())
            elif status == 200 and op == "browse":
                me["cursor"] = response.json().get("next_cursor")  # None: back to page one
            time.sleep(PAUSE)


def _groups(stack: Stack) -> dict[str, list[int]]:
    groups = {name: stack.processes.members(name) for name in stack.names}
    groups["redis"] = [stack.redis.pid]
    return groups


def _sample(stack: Stack) -> dict[str, tuple[int, int, int]]:
    """Per process group: (summed RSS bytes, summed open fds, processes)."""
    result = {}
    for name, pids in _groups(stack).items():
        rss = fds = alive = 0
        for pid in pids:
            try:
                proc = psutil.Process(pid)
                rss += proc.memory_info().rss
                fds += proc.num_fds()
                alive += 1
            except psutil.Error:
                continue  # a gunicorn worker recycled between listing and reading
        result[name] = (rss, fds, alive)
    return result


def test_soak_memory_and_fds_level_off(stack: Stack) -> None:
    gw = stack.gateway_url
    with client() as http:
        admin = admin_token(http, gw)
        products = [new_product(http, gw, admin, stock=10)["id"] for _ in range(20)]
    traffic = Traffic()
    stop = threading.Event()
    drivers = [
        threading.Thread(target=_drive, args=(gw, admin, products, stop, traffic), daemon=True)
        for _ in range(THREADS)
    ]
    samples: list[tuple[float, dict[str, tuple[int, int, int]]]] = []
    started = time.monotonic()
    for driver in drivers:
        driver.start()
    try:
        while (elapsed := time.monotonic() - started) < SOAK_SECONDS:
            samples.append((elapsed, _sample(stack)))
            time.sleep(SAMPLE_SECONDS)
    finally:
        stop.set()
        for driver in drivers:
            driver.join(30)
    duration = time.monotonic() - started
    requests = sum(traffic.statuses.values())
    report = _report(samples, traffic, duration)
    print("\n" + report)
    if out := os.environ.get("SOAK_REPORT"):
        with open(out, "w") as handle:
            handle.write(report + "\n")

    assert len(samples) >= 9, "too few samples to see a trend"
    failures = {k: v for k, v in traffic.statuses.items() if k[1] >= 500 or k[1] == 0}
    assert not failures, failures
    unexpected = {k: v for k, v in traffic.statuses.items() if not 200 <= k[1] < 300}
    assert not unexpected, unexpected  # no 401/429 either: the load stayed legitimate
    assert requests > 10 * SOAK_SECONDS, f"only {requests} requests: the load did not run"
    third = len(samples) // 3
    middle, last = samples[third : 2 * third], samples[2 * third :]
    for name in samples[0][1]:
        rss_mid = statistics.mean(s[name][0] for _, s in middle)
        rss_last = statistics.mean(s[name][0] for _, s in last)
        assert rss_last <= rss_mid * (1 + RSS_TOLERANCE) + RSS_SLACK, (name, rss_mid, rss_last)
        fd_mid = max(s[name][1] for _, s in middle)
        fd_last = max(s[name][1] for _, s in last)
        assert fd_last <= fd_mid + FD_SLACK, (name, fd_mid, fd_last)


def _report(
    samples: list[tuple[float, dict[str, tuple[int, int, int]]]], traffic: Traffic, duration: float
) -> str:
    requests = sum(traffic.statuses.values())
    ordered = sorted(traffic.latencies)
    p50 = ordered[len(ordered) // 2] if ordered else 0.0
    p99 = ordered[int(len(ordered) * 0.99)] if ordered else 0.0
    by_op: dict[str, Counter[int]] = defaultdict(Counter)
    for (op, status), count in traffic.statuses.items():
        by_op[op][status] += count
    lines = [
        f"soak {duration:.0f}s: {requests} requests ({requests / duration:.0f}/s), "
        f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms",
        "statuses: " + ", ".join(f"{op} {dict(c)}" for op, c in sorted(by_op.items())),
        "",
        "| t (s) | " + " | ".join(f"{n} RSS MiB / fds" for n in samples[0][1]) + " |",
        "|---:|" + "---:|" * len(samples[0][1]),
    ]
    step = max(1, len(samples) // 12)
    for elapsed, sample in samples[::step] + ([samples[-1]] if len(samples) % step else []):
        cells = [f"{rss / MiB:.0f} / {fds}" for rss, fds, _ in sample.values()]
        lines.append(f"| {elapsed:.0f} | " + " | ".join(cells) + " |")
    third = len(samples) // 3
    lines.append("")
    for name in samples[0][1]:
        mid = statistics.mean(s[name][0] for _, s in samples[third : 2 * third]) / MiB
        last = statistics.mean(s[name][0] for _, s in samples[2 * third :]) / MiB
        lines.append(
            f"{name}: RSS mean middle third {mid:.1f} MiB, last third {last:.1f} MiB "
            f"({(last - mid) / mid * 100:+.1f}%), processes {samples[-1][1][name][2]}"
        )
    return "\n".join(lines)
