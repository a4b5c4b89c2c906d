"""An upstream (catalog, gunicorn master and worker) SIGKILLed under load, then started
again: the gateway answers fast with 502/503 problem+json while it is gone, other
upstreams are not affected, and traffic flows again on its own once catalog is back.

A killed process refuses connections, and the gateway takes a refused instance out of
rotation at once (before its breaker has counted 5 failures): the answer is then
`upstream-unavailable` without any connection attempt, until a health poll (every 1 s
here) sees it again. The breaker's own open / half-open / closed cycle, for an upstream
that is alive but failing, is tested against a real HTTP server in
tests/integration/gateway/test_resilience.py; here its gauge must end closed."""

from __future__ import annotations

import signal
import time
from collections import Counter

from tests.faults.helpers import PROBLEM, client, eventually, headers, login, register
from tests.faults.load import LoadLoop
from tests.support.stack import Stack

FAIL_FAST_SECONDS = 5.0  # far below GATEWAY_TOTAL_TIMEOUT (15 s): only a busy machine


def _circuit_states(body: str) -> list[float]:
    return [
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith("gateway_circuit_state{") and 'upstream="catalog"' in line
    ]


def test_killed_upstream_opens_the_circuit_and_recovers(stack: Stack) -> None:
    gw = stack.gateway_url
    with client() as http:
        user = login(http, gw, register(http, gw))["access_token"]
    operations = {
        "catalog": lambda h: h.get(f"{gw}/api/v1/catalog/products?limit=3", headers=headers()),
        "users": lambda h: h.get(f"{gw}/api/v1/users/me", headers=headers(user)),
    }
    with LoadLoop(operations, threads=3) as load, client() as http:
        time.sleep(1.0)
        killed_at = time.monotonic()
        stack.processes.kill("catalog", signal.SIGKILL)
        stack.processes.stop("catalog", timeout=5.0)  # reap the group
        time.sleep(3.0)
        ready = http.get(f"{gw}/readyz")
        restart_at = time.monotonic()
        stack.processes.start("catalog", timeout=30)
        up_at = time.monotonic()

        def flowing() -> bool:
            recent = [s for s in load.since(time.monotonic() - 1.0) if s.op == "catalog"]
            return len(recent) >= 3 and all(s.status == 200 for s in recent)

        assert eventually(flowing, timeout=20, pause=0.2)
        recovered = time.monotonic() - up_at
        time.sleep(3.0)  # every worker's breaker has seen a success by now
        states_up = _circuit_states(http.get(f"{gw}/metrics").text)

    down = [s for s in load.between(killed_at + 0.1, restart_at) if s.op == "catalog"]
    counts = Counter(s.status for s in down)
    types = Counter(s.body.split('"type":"', 1)[-1].split('"', 1)[0] for s in down)
    print(f"\ncatalog killed: {dict(counts)} {dict(types)}; flowing {recovered:.1f}s after start")
    assert down and set(counts) <= {502, 503}, counts
    assert all(s.content_type.startswith(PROBLEM) for s in down)
    assert all(s.retry_after is not None for s in down if s.status == 503)
    assert max(s.seconds for s in down) < FAIL_FAST_SECONDS
    assert ready.status_code == 503 and ready.json()["checks"]["upstream:catalog"] == "down"
    assert {s.body.split('"type":"', 1)[1].split('"')[0] for s in down} <= {
        f"https://errors.shopstack.dev/{kind}"
        for kind in ("upstream-unavailable", "circuit-open", "upstream-unreachable")
    }
    # Every worker's breaker is closed again.
    assert states_up and set(states_up) == {0.0}, states_up
    # Another upstream never noticed.
    users = [s for s in load.samples if s.op == "users"]
    assert users and all(s.status == 200 for s in users), Counter(s.status for s in users)
    assert all(s.status == 200 for s in load.since(up_at + recovered) if s.op == "catalog")
