"""Every process makes its Prometheus multiprocess folder itself (issue 16: `migrate` died
in a fresh /tmp because only gunicorn and the worker's entrypoint made it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.support import ROOT, python_files

_DEFINES_METRICS = re.compile(r"\b(?:Counter|Gauge|Histogram|Summary)\(\s*[\"']")


def _modules_defining_metrics() -> list[str]:
    return sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in python_files()
        if _DEFINES_METRICS.search(path.read_text(encoding="utf-8"))
    )


def test_there_are_metric_modules_to_check() -> None:
    assert {"services.common.metrics", "gateway.metrics"} <= set(_modules_defining_metrics())


@pytest.mark.parametrize("module", _modules_defining_metrics())
def test_importing_it_first_makes_the_missing_folder(module: str, tmp_path: Path) -> None:
    """Each module that defines metrics, imported first in a fresh interpreter, with the
    folder missing (as in a new container's empty /tmp)."""
    folder = tmp_path / "not" / "made" / "yet"
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        env=os.environ | {"PROMETHEUS_MULTIPROC_DIR": str(folder)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert folder.is_dir()
