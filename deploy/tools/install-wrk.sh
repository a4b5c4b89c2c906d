#!/usr/bin/env bash
# Installs wrk (the bench's load generator, Debian package `wrk`) and matplotlib (its
# plot); quick and silent when both are there. Without them the bench still runs: it
# falls back to its built-in aiohttp generator and skips the plot.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
if ! command -v wrk >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
"$PYTHON" -c "import matplotlib" 2>/dev/null || "$PYTHON" -m pip install -q "matplotlib>=3.8"
command -v wrk >/dev/null
