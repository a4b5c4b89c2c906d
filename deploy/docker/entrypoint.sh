#!/bin/sh
# Starts one process of the stack; the first argument says which.
# Extra arguments go to the process (for example `migrate auth` upgrades one schema).
set -eu

service="${1:-}"
[ "$#" -gt 0 ] && shift

gunicorn_app() {
    # $1: default port, $2: the app factory gunicorn imports, then extra gunicorn options.
    export PORT="${PORT:-$1}"
    app="$2"
    shift 2
    exec gunicorn -c /app/deploy/gunicorn.conf.py "$@" "$app"
}

case "$service" in
    auth)    export SERVICE_NAME=auth;    gunicorn_app 8001 'services.auth.app:create_app()' "$@" ;;
    users)   export SERVICE_NAME=users;   gunicorn_app 8002 'services.users.app:create_app()' "$@" ;;
    catalog) export SERVICE_NAME=catalog; gunicorn_app 8003 'services.catalog.app:create_app()' "$@" ;;
    gateway) export SERVICE_NAME=gateway; gunicorn_app 8000 'gateway.app:create_app()' "$@" ;;
    worker)
        export SERVICE_NAME=worker
        export WORKER_PORT="${WORKER_PORT:-${PORT:-8004}}"
        # No gunicorn master to empty the metrics directory: stale samples of a previous
        # run (a restarted container keeps a Kubernetes emptyDir) would be summed. The
        # process makes the folder itself when it is missing (services/common/metrics.py).
        if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ] && [ -d "$PROMETHEUS_MULTIPROC_DIR" ]; then
            find "$PROMETHEUS_MULTIPROC_DIR" -mindepth 1 -delete
        fi
        exec python -m services.worker "$@"
        ;;
    migrate)
        exec python -m services.common.migrate upgrade "$@"
        ;;
    *)
        echo "usage: entrypoint auth|users|catalog|gateway|worker|migrate [args...]" >&2
        exit 64
        ;;
esac
