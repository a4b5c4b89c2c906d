"""Run wrk (a C load generator, separate process) with a generated Lua script that
cycles through the requests of a Load and prints its results as one JSON line."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from tools.bench.loadspec import Load, Req, Result

MARK = "BENCHJSON "

_SCRIPT = r"""
local threads = {}
local counter = 1
function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

local prepared = {}
local idx = 0
local seq = 0
tokens = {}
statuses = {}

function init(args)
  for i, r in ipairs(reqs) do prepared[i] = wrk.format(r.m, r.p, r.h, r.b) end
  -- threads start at different points of the list so they do not move in lockstep
  idx = (((id or 1) - 1) * 7919) % #reqs
end

function request()
  idx = idx % #reqs + 1
  local r = reqs[idx]
  if r.r then
    local tok = table.remove(tokens)
    if tok then
      return wrk.format(r.m, r.p, r.h, '{"refresh_token":"' .. tok .. '"}')
    end
    return prepared[r.f]
  end
  if r.u then
    seq = seq + 1
    local body = string.gsub(r.b, "{{n}}", "t" .. (id or 1) .. "-" .. seq)
    return wrk.format(r.m, r.p, r.h, body)
  end
  return prepared[idx]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if has_refresh and body then
    local tok = string.match(body, '"refresh_token"%s*:%s*"([^"]+)"')
    if tok then table.insert(tokens, tok) end
  end
end

function done(summary, latency, requests)
  local agg = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    if s then
      for k, v in pairs(s) do agg[k] = (agg[k] or 0) + v end
    end
  end
  local parts = {}
  for k, v in pairs(agg) do table.insert(parts, '"' .. k .. '":' .. v) end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"p50":%f,"p95":%f,"p99":%f,' ..
    '"errors":%d,"statuses":{%s}}\n',
    summary.requests, summary.duration,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.timeout, table.concat(parts, ",")))
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal here


def _lua_request(req: Req) -> str:
    headers = ",".join(f"[{_lua_string(k)}]={_lua_string(v)}" for k, v in req.headers.items())
    body = "nil" if req.body is None else _lua_string(req.body)
    flags = f"r={str(req.refresh).lower()},u={str(req.unique).lower()}"
    return (
        f"{{m={_lua_string(req.method)},p={_lua_string(req.path)},h={{{headers}}},"
        f"b={body},{flags},f={req.fallback + 1}}}"
    )


def script(load: Load) -> str:
    reqs = ",\n".join(_lua_request(r) for r in load.requests)
    has_refresh = "true" if any(r.refresh for r in load.requests) else "false"
    return f"reqs = {{\n{reqs}\n}}\nhas_refresh = {has_refresh}\n{_SCRIPT}"


def command(load: Load, script_path: Path) -> list[str]:
    threads = max(1, min(load.threads, load.connections))
    return [
        "wrk",
        f"-t{threads}",
        f"-c{load.connections}",
        f"-d{max(1, round(load.duration))}s",
        f"--timeout={max(1, round(load.timeout))}s",
        "-s",
        str(script_path),
        load.base_url,
    ]


class WrkRun:
    """A wrk process in flight; `result()` waits for it and parses its JSON line."""

    def __init__(self, load: Load) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="bench-wrk-")
        path = Path(self._dir.name) / "load.lua"
        path.write_text(script(load))
        self._proc = subprocess.Popen(
            command(load, path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self._timeout = load.duration + load.timeout + 30

    def result(self) -> Result:
        try:
            out, err = self._proc.communicate(timeout=self._timeout)
        finally:
            self._dir.cleanup()
        line = next((x for x in out.splitlines() if x.startswith(MARK)), None)
        if line is None:
            code = self._proc.returncode
            raise RuntimeError(f"wrk printed no result (exit {code}): {err[-500:]}")
        data = json.loads(line[len(MARK) :])
        return Result(
            generator="wrk",
            requests=data["requests"],
            duration=data["duration_us"] / 1e6,
            p50=data["p50"],
            p95=data["p95"],
            p99=data["p99"],
            errors=data["errors"],
            statuses={int(k): v for k, v in data["statuses"].items()},
        )
