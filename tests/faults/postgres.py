"""A private PostgreSQL server the fault tests may stop, crash and start again.

The machine's PostgreSQL is shared with every other test, so the faults stack gets one of
its own: the binaries of the embedded PostgreSQL wheel (tools/devstack/embedded.py), on a
loopback TCP port (a stopped server is a refused connection at once, like a real outage).
As root, initdb and postgres refuse to run, so they run as the user the wheel runs them as.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tools.devstack.embedded import free_port, postgres_bin, postgres_run_as, wait_for_port

_bin = postgres_bin


class PrivatePostgres:
    def __init__(self) -> None:
        self._user = postgres_run_as()
        # Not under pytest's tmp dir: that is 0700 root, closed to the postgres user.
        self.root = Path(tempfile.mkdtemp(prefix="faults-pg-"))
        self.root.chmod(0o755)
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.data = self.root / "data"
        self.port = free_port()
        self._run(
            _bin("initdb"),
            "-N",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "utf8",
        )
        self.start()

    def _run(self, *argv: str) -> None:
        done = subprocess.run(
            argv, user=self._user, capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode != 0:
            log = (self.root / "log").read_text() if (self.root / "log").exists() else ""
            raise RuntimeError(f"{argv[0]} failed: {done.stdout}{done.stderr}\n{log[-2000:]}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = f"-p {self.port} -h 127.0.0.1 -k {self.root} -c max_connections=200"
        self._run(
            _bin("pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-o", options,
            "-w", "start",
        )  # fmt: skip
        wait_for_port(self.port)

    def stop(self, mode: str = "fast") -> None:
        """`immediate` is a crash: no checkpoint, WAL replayed at the next start."""
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except RuntimeError:
            pass  # already stopped
        shutil.rmtree(self.root, ignore_errors=True)
