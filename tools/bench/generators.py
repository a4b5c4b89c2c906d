"""Pick the load generator: wrk when installed, else the built-in aiohttp one."""

from __future__ import annotations

from typing import Protocol

from tools.bench import wrk
from tools.bench.loadspec import Load, Result
from tools.bench.pyload import PyRun


class Running(Protocol):
    def result(self) -> Result: ...


def choose(preferred: str) -> str:
    if preferred == "auto":
        return "wrk" if wrk.available() else "python"
    if preferred == "wrk" and not wrk.available():
        raise SystemExit("wrk is not installed (apt-get install -y wrk, or --generator python)")
    return preferred


def start(generator: str, load: Load) -> Running:
    return wrk.WrkRun(load) if generator == "wrk" else PyRun(load)


def run(generator: str, load: Load) -> Result:
    return start(generator, load).result()
