"""nginx as the bench's reference proxy (issue 20): a plain reverse proxy with upstream
keepalive in front of the same catalog the gateway proxies, so the gateway's hop is
always judged against what a user would deploy instead. No auth, no rate limit.

Debian's `nginx` package (deploy/tools/install-nginx.sh); absent, its rows say so."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CONF = """\
worker_processes {workers};
{user}
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
daemon off;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream catalog {{
        server {upstream};
        keepalive 128;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://catalog;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
        }}
    }}
}}
"""


def binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def config(workdir: Path, *, port: int, upstream: str, workers: int) -> Path:
    """Write nginx.conf (and its temp folders) under workdir/nginx; returns its path."""
    folder = workdir / "nginx"
    folder.mkdir(parents=True, exist_ok=True)
    # As root, nginx's workers would drop to `nobody`, who cannot enter a 0700 workdir.
    user = "user root;" if os.geteuid() == 0 else ""
    path = folder / "nginx.conf"
    path.write_text(
        CONF.format(
            workers=workers, user=user, dir=folder, port=port, upstream=upstream.split("//")[-1]
        )
    )
    return path


def command(conf: Path) -> list[str]:
    exe = binary()
    if exe is None:
        raise FileNotFoundError("nginx is not installed (deploy/tools/install-nginx.sh)")
    return [exe, "-c", str(conf), "-p", str(conf.parent), "-e", str(conf.parent / "error.log")]


def check(conf: Path) -> None:
    subprocess.run([*command(conf), "-t", "-q"], check=True, capture_output=True, timeout=30)
