"""What the deployment tests compare the config against: the code itself.

- metric names defined in services/ and gateway/ (Counter/Gauge/Histogram/Summary calls),
- environment variable names the code reads (settings fields and their aliases,
  os.environ look-ups, deploy/gunicorn.conf.py),
- ports from docs/conventions.md.
"""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
from functools import cache
from pathlib import Path

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from services import registry

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CODE_DIRS = (ROOT / "services", ROOT / "gateway")

# Kinds of process and their ports (docs/conventions.md, "Ports").
PORTS = {"gateway": registry.GATEWAY_PORT, **{s.name: s.port for s in registry.SERVICES}}
APPS = tuple(PORTS)

_METRIC_DEF = re.compile(r"\b(?:Counter|Gauge|Histogram|Summary)\(\s*[\"']([a-zA-Z_:][\w:]*)[\"']")
_ENV_READ = re.compile(r"(?:environ\.get|environ\[|getenv)\(?\s*[\"']([A-Z][A-Z0-9_]*)[\"']")


def python_files() -> list[Path]:
    return [p for d in CODE_DIRS if d.exists() for p in d.rglob("*.py")]


@cache
def defined_metrics() -> frozenset[str]:
    """Every metric name the code defines, with the series a histogram adds."""
    names: set[str] = set()
    for path in python_files():
        for name in _METRIC_DEF.findall(path.read_text(encoding="utf-8")):
            names.add(name)
            names.update({f"{name}_bucket", f"{name}_sum", f"{name}_count"})
    return frozenset(names)


def _settings_classes() -> list[type[BaseSettings]]:
    classes: list[type[BaseSettings]] = []
    for path in python_files():
        if path.name != "settings.py":
            continue
        module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseSettings) and obj is not BaseSettings:
                classes.append(obj)
    return classes


@cache
def env_names_read() -> frozenset[str]:
    """Environment variable names some process of the stack reads."""
    names: set[str] = set()
    for cls in _settings_classes():
        for field_name, field in cls.model_fields.items():
            alias = field.validation_alias
            if isinstance(alias, AliasChoices):
                names.update(str(c).upper() for c in alias.choices if isinstance(c, str))
            elif isinstance(alias, str):
                names.add(alias.upper())
            else:
                names.add(field_name.upper())
    sources = [*python_files(), DEPLOY / "gunicorn.conf.py"]
    for path in sources:
        names.update(_ENV_READ.findall(path.read_text(encoding="utf-8")))
    # Read by prometheus_client's multiprocess mode (services/common/metrics.py checks it too).
    names.add("PROMETHEUS_MULTIPROC_DIR")
    return frozenset(names)


def kustomize(overlay: str) -> str:
    result = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


_PROMQL_WORD = re.compile(r"[a-zA-Z_:][\w:]*")
_PROMQL_KEYWORDS = {
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "histogram_quantile",
    "abs",
    "clamp_min",
    "clamp_max",
    "time",
    "vector",
    "scalar",
    "absent",
    "changes",
    "resets",
    "avg_over_time",
    "max_over_time",
    "min_over_time",
    "sum_over_time",
    "label_replace",
    "inf",
    "nan",
    "le",
}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not keywords, functions,
    label names (inside {...} or by/on (...) lists), strings or durations."""
    text = re.sub(r'"[^"]*"', '""', expr)  # strings (label values, legend text)
    text = re.sub(r"\{[^}]*\}", "{}", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "[]", text)  # range durations
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in _PROMQL_WORD.finditer(text):
        word = match.group(0)
        if word.lower() in _PROMQL_KEYWORDS or re.fullmatch(r"\d+\w*", word):
            continue
        rest = text[match.end() :].lstrip()
        if rest.startswith("("):  # a function call
            continue
        names.add(word)
    return names
