"""The gunicorn worker class of every service and the gateway."""

from __future__ import annotations

from typing import Any

from uvicorn_worker import UvicornWorker

from services.common.http_protocol import HttpProtocol


class Worker(UvicornWorker):
    """UvicornWorker without the `server: uvicorn` response header (the stack does not
    announce what it runs on: less help for an attacker picking exploits), answering
    each response in one write (services/common/http_protocol.py)."""

    CONFIG_KWARGS: dict[str, Any] = {
        **UvicornWorker.CONFIG_KWARGS,
        "server_header": False,
        "http": HttpProtocol,
    }
