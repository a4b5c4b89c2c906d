"""Gateway settings: the shared ones plus GATEWAY_* fields.

Upstreams come from GATEWAY_ROUTES (JSON: path prefix -> list of base URLs) or, when
it is not set, from AUTH_URL / USERS_URL / CATALOG_URL (comma-separated for several
instances; GATEWAY_AUTH_URL... spellings win).
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, IPvAnyNetwork, model_validator

from services.common.settings import CommonSettings, Environment
from services.registry import API_SERVICES, BY_NAME, Service

# The origins of the usual local front-end dev servers (Vite 5173, CRA/Next 3000):
# allowed by default in development only (GATEWAY_CORS_ORIGINS unset).
DEV_CORS_ORIGINS = [
    f"http://{host}:{port}" for port in (5173, 3000) for host in ("localhost", "127.0.0.1")
]


def _alias(name: str, *more: str) -> Any:
    return AliasChoices(f"GATEWAY_{name.upper()}", *more, name)


def _instances(value: str) -> list[str]:
    return [part.strip().rstrip("/") for part in value.split(",") if part.strip()]


class GatewaySettings(CommonSettings):
    service_name: str = "gateway"

    # Upstream base URLs (a comma-separated list balances over several instances);
    # AUTH_URL/USERS_URL/CATALOG_URL work too.
    auth_url: str = Field(
        default=BY_NAME["auth"].default_url, validation_alias=_alias("auth_url", "AUTH_URL")
    )
    users_url: str = Field(
        default=BY_NAME["users"].default_url, validation_alias=_alias("users_url", "USERS_URL")
    )
    catalog_url: str = Field(
        default=BY_NAME["catalog"].default_url,
        validation_alias=_alias("catalog_url", "CATALOG_URL"),
    )
    # Explicit table; None means "built from the three URLs above".
    routes: dict[str, list[str]] | None = Field(default=None, validation_alias=_alias("routes"))

    # Request bodies above this get a 413; upstream timeouts in seconds; idempotent
    # requests are retried on connection errors with this backoff.
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1, validation_alias=_alias("max_body_bytes")
    )
    connect_timeout: float = Field(default=1.0, gt=0, validation_alias=_alias("connect_timeout"))
    total_timeout: float = Field(default=15.0, gt=0, validation_alias=_alias("total_timeout"))
    retries: int = Field(default=2, ge=0, le=5, validation_alias=_alias("retries"))
    retry_backoff: float = Field(default=0.05, ge=0, validation_alias=_alias("retry_backoff"))

    # Seconds a client has to send its whole request body (slow-loris defence).
    body_timeout: float = Field(default=10.0, gt=0, validation_alias=_alias("body_timeout"))

    # Per-worker pool; keep-alive shorter than the upstreams' (gunicorn keepalive=5 s)
    # so we never reuse a socket the server is closing.
    pool_limit: int = Field(default=256, ge=1, validation_alias=_alias("pool_limit"))
    pool_limit_per_host: int = Field(
        default=0, ge=0, validation_alias=_alias("pool_limit_per_host")
    )
    keepalive_timeout: float = Field(
        default=4.0, gt=0, validation_alias=_alias("keepalive_timeout")
    )
    # GETs without a body over the gateway's lean HTTP/1.1 pool (gateway/upstream.py);
    # false sends everything through aiohttp.
    lean_upstream: bool = Field(default=True, validation_alias=_alias("lean_upstream"))

    # Circuit breaker per upstream: opens after this many consecutive failures, stays open
    # this long; active health checks every interval.
    circuit_failures: int = Field(default=5, ge=1, validation_alias=_alias("circuit_failures"))
    circuit_open_seconds: float = Field(
        default=10.0, gt=0, validation_alias=_alias("circuit_open_seconds")
    )
    health_interval: float = Field(default=5.0, gt=0, validation_alias=_alias("health_interval"))
    # While an instance is unhealthy it is polled this often instead (never less often
    # than health_interval): a restarted or late-starting instance is back in well under
    # a second, not up to a whole interval later.
    health_unhealthy_interval: float = Field(
        default=0.5, gt=0, validation_alias=_alias("health_unhealthy_interval")
    )
    health_timeout: float = Field(default=1.0, gt=0, validation_alias=_alias("health_timeout"))

    # `limits` notation; fixed windows in Redis shared by every worker and replica.
    rate_limit_enabled: bool = Field(default=True, validation_alias=_alias("rate_limit_enabled"))
    rate_anonymous: str = Field(default="120/minute", validation_alias=_alias("rate_anonymous"))
    rate_user: str = Field(default="600/minute", validation_alias=_alias("rate_user"))
    rate_auth: str = Field(default="30/minute", validation_alias=_alias("rate_auth"))

    # Allowed CORS origins (JSON list). Unset in development: the local front-end dev
    # servers (http://localhost and 127.0.0.1, ports 5173 and 3000); production refuses
    # a loopback origin.
    cors_origins: list[str] = Field(default_factory=list, validation_alias=_alias("cors_origins"))

    # Strict-Transport-Security max-age.
    hsts_seconds: int = Field(default=63072000, ge=0, validation_alias=_alias("hsts_seconds"))
    # /docs and /openapi.json on or off (the client contract: public when on).
    docs_enabled: bool = Field(default=True, validation_alias=_alias("docs_enabled"))
    # Operator endpoints (/metrics, /readyz) answer only on the operator listener
    # (OPERATOR_PORT, bound by deploy/gunicorn.conf.py and never published) or to a
    # client in these networks (the machine itself); anyone else gets a 404.
    operator_port: int | None = Field(
        default=None, ge=1, le=65535, validation_alias=_alias("operator_port", "OPERATOR_PORT")
    )
    operator_networks: list[IPvAnyNetwork] = Field(
        default_factory=lambda: [
            ipaddress.ip_network("127.0.0.0/8"),
            ipaddress.ip_network("::1/128"),
        ],
        validation_alias=_alias("operator_networks"),
    )
    # How long the merged OpenAPI document is kept before the upstreams are asked again.
    openapi_cache_seconds: float = Field(
        default=60.0, gt=0, validation_alias=_alias("openapi_cache_seconds")
    )

    @model_validator(mode="after")
    def _derive(self) -> GatewaySettings:
        if self.routes is None:
            self.routes = {
                prefix: _instances(self._upstream(service))
                for service in API_SERVICES
                for prefix in service.prefixes
            }
        for prefix, urls in self.routes.items():
            if not prefix.startswith("/") or not urls:
                raise ValueError(f"route {prefix!r} needs a leading / and at least one upstream")
        if "cors_origins" not in self.model_fields_set and self.is_development:
            self.cors_origins = list(DEV_CORS_ORIGINS)
        if self.environment is Environment.production:
            local = [o for o in self.cors_origins if _is_loopback(o)]
            if local:
                raise ValueError(f"GATEWAY_CORS_ORIGINS: no local origin in production: {local}")
        # The JWKS lives on auth: follow AUTH_URL unless JWKS_URL was given.
        if "jwks_url" not in self.model_fields_set:
            first = _instances(self.auth_url)
            if first:
                self.jwks_url = f"{first[0]}/.well-known/jwks.json"
        return self

    def _upstream(self, service: Service) -> str:
        """A service's URLs: its field here if it has one, else GATEWAY_<NAME>_URL or
        <NAME>_URL, else the registry's local default."""
        field_value = getattr(self, f"{service.name}_url", None)
        if isinstance(field_value, str):
            return field_value
        env = os.environ
        return (
            env.get(f"GATEWAY_{service.env_url}") or env.get(service.env_url) or service.default_url
        )

    @property
    def route_table(self) -> dict[str, list[str]]:
        assert self.routes is not None
        return {prefix: [u.rstrip("/") for u in urls] for prefix, urls in self.routes.items()}


def _is_loopback(origin: str) -> bool:
    host = urlsplit(origin).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
