"""The built-in load generator, for machines without wrk (CI): aiohttp in a separate
process, closed loop, the same Load in and the same Result out as wrk.

    python -m tools.bench.pyload < load.json     (prints one Result as JSON)
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from dataclasses import asdict
from typing import Any

import aiohttp

from tools.bench.loadspec import Load, Result

_TOKEN = re.compile(rb'"refresh_token"\s*:\s*"([^"]+)"')


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    rank = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[rank]


class _State:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.errors = 0
        self.tokens: list[str] = []
        self.seq = 0


async def _client(
    session: aiohttp.ClientSession, load: Load, start: int, deadline: float, state: _State
) -> None:
    reqs = load.requests
    idx = start
    watch_tokens = any(r.refresh for r in reqs)
    while time.monotonic() < deadline:
        req = reqs[idx % len(reqs)]
        idx += 1
        body = req.body
        if req.refresh:
            if state.tokens:
                body = json.dumps({"refresh_token": state.tokens.pop()})
            else:
                req = reqs[req.fallback]
                body = req.body
        elif req.unique and body is not None:
            state.seq += 1
            body = body.replace("{{n}}", f"p{state.seq}")
        began = time.perf_counter()
        try:
            async with session.request(
                req.method, load.base_url + req.path, headers=req.headers, data=body
            ) as resp:
                payload = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError):
            state.errors += 1
            continue
        state.latencies.append((time.perf_counter() - began) * 1000)
        state.statuses[status] = state.statuses.get(status, 0) + 1
        if watch_tokens:
            match = _TOKEN.search(payload)
            if match:
                state.tokens.append(match.group(1).decode())


async def run(load: Load) -> Result:
    state = _State()
    timeout = aiohttp.ClientTimeout(total=load.timeout)
    connector = aiohttp.TCPConnector(limit=load.connections, force_close=False)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        began = time.monotonic()
        deadline = began + load.duration
        step = max(1, len(load.requests) // max(1, load.connections))
        await asyncio.gather(
            *(_client(session, load, i * step, deadline, state) for i in range(load.connections))
        )
        elapsed = time.monotonic() - began
    ordered = sorted(state.latencies)
    return Result(
        generator="python-aiohttp",
        requests=len(ordered) + state.errors,
        duration=elapsed,
        p50=percentile(ordered, 50),
        p95=percentile(ordered, 95),
        p99=percentile(ordered, 99),
        errors=state.errors,
        statuses=state.statuses,
    )


class PyRun:
    """The generator as a child process, so it does not share a GIL with the bench."""

    def __init__(self, load: Load) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tools.bench.pyload"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(load.to_json()))
        self._proc.stdin.close()
        self._timeout = load.duration + load.timeout + 30

    def result(self) -> Result:
        assert self._proc.stdout is not None and self._proc.stderr is not None
        self._proc.wait(timeout=self._timeout)
        out, err = self._proc.stdout.read(), self._proc.stderr.read()
        if self._proc.returncode != 0:
            raise RuntimeError(f"python load generator failed: {err[-500:]}")
        data: dict[str, Any] = json.loads(out)
        data["statuses"] = {int(k): v for k, v in data["statuses"].items()}
        return Result(**data)


def main() -> None:
    load = Load.from_json(json.loads(sys.stdin.read()))
    result = asyncio.run(run(load))
    sys.stdout.write(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
