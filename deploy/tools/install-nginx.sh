#!/usr/bin/env bash
# Installs nginx (Debian package `nginx`), the bench's reference reverse proxy
# (tools/bench/nginx.py). Quick and silent when it is there; without it the bench
# reports its rows as not measured.
set -euo pipefail

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nginx >/dev/null
fi
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]
