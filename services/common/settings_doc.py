"""Renders every settings class as a markdown table: docs/configuration.md is generated.

    python -m services.common.settings_doc > docs/configuration.md

The description of a setting is the comment on its line or the comment block just above
it in the class body, so the table cannot drift from the code (a test compares them).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
import textwrap
from typing import Any

from pydantic import AliasChoices
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from services.common.settings import DEV_SECRET, CommonSettings

# (title, "module:Class"): the order of the sections in the document.
SETTINGS_CLASSES: tuple[tuple[str, str], ...] = (
    ("Every service, the gateway and the worker", "services.common.settings:CommonSettings"),
    ("gateway", "gateway.settings:GatewaySettings"),
    ("auth", "services.auth.settings:AuthSettings"),
    ("users", "services.users.settings:UsersSettings"),
    ("catalog", "services.catalog.settings:CatalogSettings"),
    ("worker", "services.worker.settings:WorkerSettings"),
)

# Read by deploy/gunicorn.conf.py and the dev stack, outside any settings class.
PROCESS_VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("WEB_CONCURRENCY", "2", "gunicorn worker processes per service"),
    ("BIND / PORT", "0.0.0.0:$PORT", "gunicorn listen address (PORT defaults to 8000)"),
    ("GRACEFUL_TIMEOUT", "30", "seconds a SIGTERM waits for in-flight requests"),
    ("WORKER_TIMEOUT", "60", "seconds before gunicorn kills a silent worker"),
    ("KEEPALIVE", "5", "HTTP keep-alive seconds"),
    ("MAX_REQUESTS / MAX_REQUESTS_JITTER", "100000 / 10000", "requests before a recycle"),
    ("FORWARDED_ALLOW_IPS", "127.0.0.1", "proxies whose X-Forwarded-* headers are trusted"),
    ("PROMETHEUS_MULTIPROC_DIR", "(unset)", "metrics directory shared by gunicorn workers"),
    ("TEST_DATABASE_URL / TEST_REDIS_URL", "(embedded)", "servers `make test` uses; CI sets them"),
)


def _load(path: str) -> type[BaseSettings]:
    module, name = path.split(":")
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, BaseSettings)
    return cls


def field_comments(cls: type) -> dict[str, str]:
    """Field name → its comments: the block heading its paragraph, then its own inline one.

    A comment block above a run of fields (no blank line between) speaks for all of them.
    """
    lines = textwrap.dedent(inspect.getsource(cls)).splitlines()
    comments: dict[str, str] = {}
    for node in ast.parse("\n".join(lines)).body[0].body:  # type: ignore[attr-defined]
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1
        inline = [
            line.split("  #", 1)[1].strip() for line in lines[first : last + 1] if "  #" in line
        ]
        row = first - 1
        while row >= 0 and lines[row].strip() and not lines[row].strip().startswith("#"):
            row -= 1  # climb over the fields of the same paragraph
        heading: list[str] = []
        while row >= 0 and lines[row].strip().startswith("#"):
            heading.insert(0, lines[row].strip().lstrip("#").strip())
            row -= 1
        own = [c for c in inline if not c.startswith("noqa")]
        comments[node.target.id] = " ".join(heading + own)
    return comments


def _env_name(name: str, info: FieldInfo) -> str:
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return name.upper()


def _default(info: FieldInfo) -> str:
    value: Any = info.default
    if value is PydanticUndefined and info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    if value == DEV_SECRET:
        return "dev-only value, refused in production"
    if value is None:
        return "(unset)"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "(empty)"
    return str(getattr(value, "value", value))


def render_class(title: str, cls: type[BaseSettings], skip: set[str]) -> list[str]:
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if issubclass(klass, BaseSettings) and klass is not BaseSettings:
            comments.update(field_comments(klass))
    rows = [f"## {title}", "", "| variable | default | what it is |", "|---|---|---|"]
    for name, info in cls.model_fields.items():
        if name in skip:
            continue
        description = (info.description or comments.get(name, "")).replace("|", "\\|")
        rows.append(f"| `{_env_name(name, info)}` | `{_default(info)}` | {description} |")
    return [*rows, ""]


def render() -> str:
    out = [
        "# Configuration",
        "",
        "Every setting is an environment variable (or a line in `.env`). Generated from the",
        "settings classes by `python -m services.common.settings_doc`; do not edit by hand.",
        "Names are case-insensitive. Service-specific variables carry the service's prefix.",
        "",
    ]
    common = set(CommonSettings.model_fields)
    for title, path in SETTINGS_CLASSES:
        cls = _load(path)
        out += render_class(title, cls, skip=set() if cls is CommonSettings else common)
    out += ["## Processes (gunicorn, dev stack, tests)", "", "| variable | default | what it is |"]
    out += ["|---|---|---|"]
    out += [f"| `{name}` | `{default}` | {text} |" for name, default, text in PROCESS_VARIABLES]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
