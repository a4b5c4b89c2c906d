#!/bin/sh
# Renders a Redis ACL file from a template (deploy/redis/users.acl) to stdout: comments and
# blank lines dropped, lines ending in "\" joined, each {{VAR}} replaced by the SHA-256 of
# the environment variable VAR (empty or unset: refused). POSIX sh + sha256sum, so it runs
# in the redis image itself.
#   REDIS_PASSWORD=... REDIS_GATEWAY_PASSWORD=... sh deploy/redis/render-acl.sh deploy/redis/users.acl
set -eu

die() { echo "render-acl: $*" >&2; exit 1; }

substitute() {
    out=$1
    while :; do
        case "$out" in *'{{'*'}}'*) ;; *) break ;; esac
        rest=${out#*\{\{}
        name=${rest%%\}\}*}
        case "$name" in '' | *[!A-Z0-9_]*) die "bad placeholder {{$name}}" ;; esac
        eval "value=\${$name-}"
        [ -n "$value" ] || die "$name is not set"
        hash=$(printf '%s' "$value" | sha256sum | cut -c1-64)
        out=${out%%\{\{*}$hash${rest#*\}\}}
    done
    printf '%s\n' "$out"
}

[ $# -eq 1 ] || die "usage: render-acl.sh TEMPLATE"
line=""
while IFS= read -r raw || [ -n "$raw" ]; do
    # strip leading blanks (continuation lines are indented)
    raw=${raw#"${raw%%[! ]*}"}
    case "$raw" in '#'* | '') continue ;; esac
    case "$raw" in
        *\\) line="$line${raw%\\}" ;;
        *) substitute "$line$raw"; line="" ;;
    esac
done < "$1"
[ -z "$line" ] || die "the last line ends in a backslash"
