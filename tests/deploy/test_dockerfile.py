"""deploy/Dockerfile: hadolint clean, plus the checks this project insists on."""

from __future__ import annotations

import re
import subprocess

from services import registry
from tests.deploy.support import DEPLOY, ROOT

DOCKERFILE = (DEPLOY / "Dockerfile").read_text()
INSTRUCTIONS = [
    line.strip()
    for line in re.sub(r"\\\n", " ", DOCKERFILE).splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]


def test_hadolint_passes() -> None:
    result = subprocess.run(
        ["hadolint", "--config", str(DEPLOY / ".hadolint.yaml"), str(DEPLOY / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_with_pinned_slim_base() -> None:
    froms = [i for i in INSTRUCTIONS if i.startswith("FROM ")]
    assert len(froms) == 2
    for line in froms:
        assert re.match(r"FROM python:3\.11\.\d+-slim-\w+ AS \w+$", line), line


def test_final_stage_has_no_build_tools_and_runs_as_non_root() -> None:
    final = DOCKERFILE.split("AS runtime", 1)[1]
    assert "build-essential" not in final and "apt-get install" not in final
    assert "COPY --from=builder /opt/venv /opt/venv" in final
    users = [i for i in INSTRUCTIONS if i.startswith("USER ")]
    assert users == ["USER 10001:10001"]
    assert "HEALTHCHECK" in final and 'ENTRYPOINT ["/usr/local/bin/entrypoint"]' in final


def test_no_add_and_apt_lists_removed() -> None:
    assert not any(i.startswith("ADD ") for i in INSTRUCTIONS)
    for run in (i for i in INSTRUCTIONS if "apt-get install" in i):
        assert "rm -rf /var/lib/apt/lists/*" in run and "--no-install-recommends" in run


def test_dependencies_are_installed_from_the_lock_before_the_code_is_copied() -> None:
    position = {i: n for n, i in enumerate(INSTRUCTIONS)}
    lock = position["COPY requirements-main.lock ./"]
    deps = next(n for i, n in position.items() if "-r requirements-main.lock" in i)
    code = position["COPY services ./services"]
    assert lock < deps < code
    install = INSTRUCTIONS[deps]
    # Exactly the lock: nothing resolved, every file hash-checked, no source builds.
    for flag in ("--no-deps", "--require-hashes", "--only-binary=:all:"):
        assert flag in install, flag


def test_build_context_holds_only_what_the_image_needs() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[1] == "**" and ".env" in ignore
    for needed in ("!requirements-main.lock", "!services/**", "!gateway/**", "!migrations/**"):
        assert needed in ignore


def test_entrypoint_is_valid_and_refuses_unknown_processes() -> None:
    script = DEPLOY / "docker" / "entrypoint.sh"
    assert subprocess.run(["sh", "-n", str(script)], timeout=10).returncode == 0
    result = subprocess.run(["sh", str(script), "nope"], capture_output=True, text=True, timeout=10)
    assert result.returncode == 64 and "usage" in result.stderr
    text = script.read_text()
    for name in (*registry.names(), "gateway", "migrate"):
        assert re.search(rf"^\s*{name}\)", text, re.M), name
    assert "services.common.migrate upgrade" in text
