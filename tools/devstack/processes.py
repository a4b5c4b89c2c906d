"""A small process supervisor for the dev stack and the end-to-end tests.

Each process runs in its own process group (its own session), so a stop reaches
gunicorn's workers too and a Ctrl-C in the terminal reaches only us: we decide the
order and the grace period. Output goes to `<log_dir>/<name>.log`, optionally echoed
with a name prefix, so a process that dies can be explained by the tail of its log.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

HEALTH_POLL_SECONDS = 0.1
# Loopback health checks must never go through an HTTP(S)_PROXY of the environment.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ProcessFailed(RuntimeError):
    """A process died or never became healthy; the message ends with its log tail."""


@dataclass
class ProcessSpec:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # on top of the parent's environment
    port: int | None = None
    health_path: str | None = "/healthz"
    cwd: Path | None = None
    # Emptied before every start (multiprocess metrics of a previous run would be summed).
    fresh_dirs: tuple[Path, ...] = ()

    @property
    def health_url(self) -> str | None:
        if self.port is None or self.health_path is None:
            return None
        return f"http://127.0.0.1:{self.port}{self.health_path}"


class _Running:
    def __init__(self, spec: ProcessSpec, popen: subprocess.Popen[bytes], pump: threading.Thread):
        self.spec = spec
        self.popen = popen
        self.pump = pump

    @property
    def pgid(self) -> int:
        return self.popen.pid  # start_new_session: the leader's pid is the group id


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: ask the kernel about the group as a whole
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def pid_alive(pid: int) -> bool:
    """True when the pid exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


class Supervisor:
    """Starts, health-checks and stops a set of processes."""

    def __init__(
        self,
        log_dir: Path,
        *,
        echo: bool = False,
        graceful_timeout: float = 10.0,
        echo_stream: IO[str] | None = None,
    ) -> None:
        self.log_dir = log_dir
        self.echo = echo
        self.graceful_timeout = graceful_timeout
        self._echo_stream = echo_stream or sys.stdout
        self._echo_lock = threading.Lock()
        self.specs: dict[str, ProcessSpec] = {}
        self._running: dict[str, _Running] = {}
        log_dir.mkdir(parents=True, exist_ok=True)

    # ---- configuration ----------------------------------------------------------------

    def add(self, spec: ProcessSpec) -> None:
        if spec.name in self.specs:
            raise ValueError(f"duplicate process name {spec.name!r}")
        self.specs[spec.name] = spec

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def log_tail(self, name: str, lines: int = 40) -> str:
        try:
            text = self.log_path(name).read_text(errors="replace")
        except FileNotFoundError:
            return "(no output)"
        return "\n".join(text.splitlines()[-lines:]) or "(no output)"

    # ---- lifecycle --------------------------------------------------------------------

    def start(self, name: str, *, wait: bool = True, timeout: float = 30.0) -> None:
        """Start one process (again, after a stop or a kill); by default wait until healthy."""
        current = self._running.get(name)
        if current is not None and current.popen.poll() is None:
            raise RuntimeError(f"{name} is already running (pid {current.popen.pid})")
        spec = self.specs[name]
        for directory in spec.fresh_dirs:
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True, exist_ok=True)
        popen = subprocess.Popen(  # noqa: S603 - argv comes from our own specs
            spec.argv,
            env={**os.environ, **spec.env},
            cwd=spec.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert popen.stdout is not None
        pump = threading.Thread(
            target=self._pump, args=(name, popen.stdout), name=f"log-{name}", daemon=True
        )
        pump.start()
        self._running[name] = _Running(spec, popen, pump)
        if wait:
            self.wait_healthy([name], timeout)

    def start_all(self, timeout: float = 30.0, abort: threading.Event | None = None) -> None:
        """Start every process at once, then wait for all to answer (parallel boot)."""
        for name in self.specs:
            self.start(name, wait=False)
        self.wait_healthy(list(self.specs), timeout, abort)

    def wait_healthy(
        self, names: Iterable[str], timeout: float = 30.0, abort: threading.Event | None = None
    ) -> None:
        """Wait until each answers on its health URL; `abort` (a Ctrl-C) ends the wait."""
        pending = set(names)
        deadline = time.monotonic() + timeout
        while pending:
            if abort is not None and abort.is_set():
                raise ProcessFailed(f"interrupted while {', '.join(sorted(pending))} started")
            for name in sorted(pending):
                running = self._running[name]
                code = running.popen.poll()
                if code is not None:
                    running.pump.join(1.0)  # let the last lines reach the log
                    raise ProcessFailed(
                        f"{name} exited with code {code} while starting; its log "
                        f"({self.log_path(name)}) ends with:\n{self.log_tail(name)}"
                    )
                if _answers(running.spec.health_url):
                    pending.discard(name)
            if not pending:
                return
            if time.monotonic() >= deadline:
                name = sorted(pending)[0]
                raise ProcessFailed(
                    f"{', '.join(sorted(pending))} not healthy after {timeout}s; "
                    f"the log of {name} ends with:\n{self.log_tail(name)}"
                )
            time.sleep(HEALTH_POLL_SECONDS)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send a signal to a process's whole group (fault tests: SIGKILL, SIGSTOP...)."""
        running = self._running[name]
        try:
            os.killpg(running.pgid, sig)
        except ProcessLookupError:
            pass

    def stop(self, name: str, timeout: float | None = None) -> int | None:
        """SIGTERM to the group, wait for a graceful exit, then SIGKILL what is left."""
        running = self._running.get(name)
        if running is None:
            return None
        grace = self.graceful_timeout if timeout is None else timeout
        self.kill(name, signal.SIGTERM)
        if not self._wait_group(running, grace):
            self.kill(name, signal.SIGKILL)
            self._wait_group(running, 5.0)
        code = running.popen.wait()
        running.pump.join(2.0)
        return code

    def stop_all(self, timeout: float | None = None) -> None:
        """Stop everything at once (each has its own grace period), newest first on kill."""
        names = [n for n in reversed(list(self._running)) if self.is_running(n)]
        for name in names:
            self.kill(name, signal.SIGTERM)
        threads = [threading.Thread(target=self.stop, args=(n, timeout)) for n in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    # ---- inspection -------------------------------------------------------------------

    def is_running(self, name: str) -> bool:
        running = self._running.get(name)
        return running is not None and running.popen.poll() is None

    def pid(self, name: str) -> int:
        return self._running[name].popen.pid

    def exited(self) -> dict[str, int]:
        """Processes that ended on their own, with their exit codes."""
        return {
            name: code
            for name, running in self._running.items()
            if (code := running.popen.poll()) is not None
        }

    def members(self, name: str) -> list[int]:
        return group_members(self._running[name].pgid)

    # ---- internals --------------------------------------------------------------------

    def _wait_group(self, running: _Running, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            running.popen.poll()  # reap the leader, or it stays a zombie member
            if not group_members(running.pgid):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def _pump(self, name: str, stream: IO[bytes]) -> None:
        prefix = f"{name:<8}| "
        with open(self.log_path(name), "ab") as sink:
            for line in iter(stream.readline, b""):
                sink.write(line)
                sink.flush()
                if self.echo:
                    text = line.decode("utf-8", "replace").rstrip("\n")
                    with self._echo_lock:
                        self._echo_stream.write(prefix + text + "\n")
                        self._echo_stream.flush()
        stream.close()


def _answers(url: str | None) -> bool:
    """The health URL returns 2xx (no URL: running is enough)."""
    if url is None:
        return True
    try:
        with _NO_PROXY.open(url, timeout=1.0) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False
