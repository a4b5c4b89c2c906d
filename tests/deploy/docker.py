"""Docker for the deploy tests: a clean copy of the tree, `docker compose` under a project
name of its own, and what to print when a step fails.

The engine comes from `bash ../shared/tools/docker-here` on this project's CI machine (or
any Docker Engine with the Compose v2 plugin); .ci/run starts it before the suite.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.support import ROOT

# Host ports: 0 lets Docker pick free ones (no race with other runs); read them back with
# `docker compose port`.
PORT_VARIABLES = ("GATEWAY_PORT", "MAILPIT_PORT", "PROMETHEUS_PORT", "GRAFANA_PORT")


def require_docker() -> None:
    """Fail (not skip) without an engine: the suite must run these in CI."""
    for command in (["docker", "info"], ["docker", "compose", "version"]):
        try:
            ok = subprocess.run(command, capture_output=True, timeout=30).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if not ok:
            pytest.fail(
                f"`{' '.join(command)}` failed: start a Docker engine with the Compose v2 "
                "plugin (here: `bash ../shared/tools/docker-here` from the project root)"
            )


def clean_copy(target: Path) -> Path:
    """The files git knows (tracked, plus new ones not ignored), as a fresh clone would
    have them: no .env, .venv, .data or caches of this checkout."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = ROOT / os.fsdecode(name)
        if not source.is_file():  # deleted in the work tree
            continue
        dest = target / os.fsdecode(name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest)
    return target


class Compose:
    """`docker compose -p <unique>` in a clean copy of the tree, .env from .env.example."""

    def __init__(self, workdir: Path) -> None:
        self.dir = clean_copy(workdir)
        shutil.copy(self.dir / ".env.example", self.dir / ".env")
        self.project = f"shopstack-test-{uuid.uuid4().hex[:8]}"
        self.image = f"shopstack-test:{self.project}"
        # The shell's environment overrides .env (Compose's precedence), so compose gets
        # none of the test process's (ENVIRONMENT=test, LOG_LEVEL...): only the ports and
        # the image tag differ from what a user gets with `cp .env.example .env`.
        passed = ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT", "TMPDIR")
        self.env = {k: os.environ[k] for k in passed if k in os.environ}
        self.env |= {v: "0" for v in PORT_VARIABLES} | {"SHOPSTACK_IMAGE": self.image}

    def run(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["docker", "compose", "-p", self.project, *args],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"docker compose {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            )
        return result

    def url(self, service: str, port: int) -> str:
        published = self.run("port", service, str(port), timeout=30).stdout.strip()
        return f"http://127.0.0.1:{published.rsplit(':', 1)[1]}"

    def containers(self, service: str | None = None) -> list[dict[str, Any]]:
        """`docker compose ps -a` as dicts (Service, Name, State, Health, ExitCode...)."""
        args = ["ps", "-a", "--format", "json"] + ([service] if service else [])
        out = self.run(*args, timeout=30).stdout.strip()
        if not out:
            return []
        if out.startswith("["):  # older Compose: one array
            return list(json.loads(out))
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def wait_healthy(self, timeout: float = 180) -> None:
        """Every long-running container running and, where it has a check, healthy."""
        deadline = time.monotonic() + timeout
        while True:
            pending = [
                c["Name"]
                for c in self.containers()
                if c["Service"] != "migrate"
                and (c["State"] != "running" or c.get("Health") not in ("", "healthy"))
            ]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"not healthy after {timeout:.0f} s: {pending}")
            time.sleep(1)

    def logs(self, *services: str, tail: int | None = None) -> str:
        args = ["logs", "--no-color", "--no-log-prefix"]
        if tail is not None:
            args += ["--tail", str(tail)]
        return self.run(*args, *services, timeout=60, check=False).stdout

    def container_ids(self, service: str) -> list[str]:
        return self.run("ps", "-q", service, timeout=30).stdout.split()

    def container_id(self, service: str) -> str:
        (only,) = self.container_ids(service)
        return only

    @contextmanager
    def step(self, what: str, *services: str) -> Iterator[None]:
        """On failure: the containers' states and the named services' last log lines."""
        try:
            yield
        except BaseException:
            report = [f"\n===== step failed: {what}", self.run("ps", "-a", check=False).stdout]
            for service in services or ("gateway",):
                report.append(f"===== logs of {service} (last 80 lines)")
                report.append(
                    self.run(
                        "logs", "--no-color", "--tail", "80", service, timeout=60, check=False
                    ).stdout
                )
            print("\n".join(report), file=sys.stderr)
            raise

    def down(self) -> None:
        self.run("down", "-v", "--remove-orphans", "--timeout", "5", timeout=180, check=False)
        subprocess.run(["docker", "image", "rm", "-f", self.image], capture_output=True, timeout=60)


def docker_inspect(container: str) -> dict[str, Any]:
    out = subprocess.run(
        ["docker", "inspect", container], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    return dict(json.loads(out)[0])
