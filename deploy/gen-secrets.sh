#!/usr/bin/env bash
# Writes .env (or the file given) from .env.example with a fresh random value for every
# secret. Refuses to overwrite an existing file unless --force (it would lock you out of
# the database volume, whose role passwords were set at its first start).
#   deploy/gen-secrets.sh [--force] [--production] [OUTPUT]
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
force=0
environment=""
output="$root/.env"
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        --production) environment=production ;;
        -*) echo "unknown option $arg" >&2; exit 64 ;;
        *) output="$arg" ;;
    esac
done
if [ -e "$output" ] && [ "$force" -ne 1 ]; then
    echo "$output exists; pass --force to replace it" >&2
    exit 1
fi

umask 077
ENVIRONMENT_OVERRIDE="$environment" python3 - "$root/.env.example" "$output" <<'PY'
import os
import re
import secrets
import sys

SECRET = re.compile(r"^([A-Z0-9_]*(SECRET|PASSWORD))=")
source, target = sys.argv[1], sys.argv[2]
lines = []
with open(source, encoding="utf-8") as f:
    for line in f:
        match = SECRET.match(line)
        if match:
            line = f"{match.group(1)}={secrets.token_hex(32)}\n"  # hex: safe inside URLs
        elif line.startswith("ENVIRONMENT=") and os.environ["ENVIRONMENT_OVERRIDE"]:
            line = f"ENVIRONMENT={os.environ['ENVIRONMENT_OVERRIDE']}\n"
        lines.append(line)
with open(target, "w", encoding="utf-8") as f:
    f.writelines(lines)
os.chmod(target, 0o600)
PY
echo "wrote $output"
