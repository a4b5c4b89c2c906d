"""Settings shared by every process, read from the environment (pydantic-settings).

Shared names (DATABASE_URL, REDIS_URL...) have no prefix so one `.env` serves the
whole stack; a service adds its own fields in a subclass.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "changethis-dev-only"  # noqa: S105 - the refused default, not a secret

# Secrets this repository publishes for development (code defaults, .env.example, the
# Kubernetes dev overlay, the benchmark stack): refused in production. A test reads those
# files and fails when one of their secrets is missing here.
KNOWN_DEV_SECRETS = frozenset(
    {
        DEV_SECRET,
        "changethis",
        "dev-cursor-secret-not-for-production",
        "dev-key-encryption-secret-not-for-production",
        "dev-email-link-secret-not-for-production",
        "bench-cursor-secret-not-for-production",
        "security-tests",
        "review-tests",
    }
)
# A production secret is long and not a repetition of a few characters: 32 characters
# (deploy/gen-secrets.sh writes 64 hex digits) with at least 10 distinct ones.
MIN_SECRET_LENGTH = 32
MIN_SECRET_DISTINCT = 10


def weak_secret(value: str) -> str | None:
    """Why `value` is not acceptable as a production secret, or None if it is."""
    if value.strip().lower() in KNOWN_DEV_SECRETS or value in KNOWN_DEV_SECRETS:
        return "is a development value published in this repository"
    if len(value) < MIN_SECRET_LENGTH:
        return f"is shorter than {MIN_SECRET_LENGTH} characters"
    if len(set(value)) < MIN_SECRET_DISTINCT:
        return f"has fewer than {MIN_SECRET_DISTINCT} distinct characters"
    return None


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class CommonSettings(BaseSettings):
    """What every service and the gateway need to run."""

    # hide_input_in_errors: a refused setting's error must not print the secrets beside it.
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", env_file_encoding="utf-8", hide_input_in_errors=True
    )

    # development | test | production: production refuses development secrets.
    environment: Environment = Environment.development
    service_name: str = "service"  # the `service` field of log lines and metrics
    log_level: str = "INFO"  # DEBUG, INFO, WARNING, ERROR

    # PostgreSQL (asyncpg); pool per worker process: size + overflow connections at most,
    # a request waits DB_POOL_TIMEOUT seconds for one, then gets a 503.
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/shopstack"
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_timeout: float = Field(default=5.0, gt=0)
    db_statement_cache_size: int = Field(default=100, ge=0)  # 0 behind pgbouncer
    # Seconds one SQL statement may run before PostgreSQL cancels it (the request gets a
    # 503); 0 = no limit. 15 s is the gateway's whole budget for an answer.
    db_statement_timeout: float = Field(default=15.0, ge=0)
    # Seconds a transaction may sit idle, holding its locks, before PostgreSQL ends its
    # session; 0 = no limit. Longer than any job: the worker holds its per-email advisory
    # lock in an open transaction while it talks to SMTP (WORKER_JOB_TIMEOUT_SECONDS).
    db_idle_in_transaction_timeout: float = Field(default=300.0, ge=0)

    # Redis: caches, rate limits, revocations, queue, streams; socket timeout in seconds.
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_timeout: float = Field(default=0.5, gt=0)
    # The hot-path Redis commands (a rate-limit count per gateway request, cache GETs)
    # over one pipelined connection per process (services/common/leanredis.py); false
    # sends them through redis-py like everything else.
    redis_lean: bool = True

    # Secret used to sign pagination cursors (HMAC); must be set outside development.
    cursor_secret: str = DEV_SECRET

    # Domain events are signed (HMAC-SHA256) per producer: EVENT_SIGNING_KEYS is JSON
    # {"auth": "...", "users": "...", "catalog": "..."}; a producer without an entry gets
    # a key derived from CURSOR_SECRET (services/common/events.py).
    event_signing_keys: dict[str, SecretStr] = Field(default_factory=dict)

    # Access-token verification (every service and the gateway verify the same way).
    jwt_issuer: str = "http://auth:8001"
    jwt_audience: str = "shopstack"
    jwks_url: str = "http://127.0.0.1:8001/.well-known/jwks.json"
    jwks_cache_seconds: int = Field(default=300, ge=1)
    jwt_leeway_seconds: int = Field(default=10, ge=0)

    cache_ttl_seconds: int = Field(default=300, ge=1)  # default lifetime of a cached entry
    # OpenTelemetry tracing; the OTLP exporter reads the standard OTEL_EXPORTER_OTLP_* variables.
    otel_enabled: bool = False

    @model_validator(mode="after")
    def _refuse_dev_secrets(self) -> CommonSettings:
        if self.environment is Environment.production:
            for name, value in self._secret_fields().items():
                reason = weak_secret(value or "")
                if reason:
                    # The reason, never the value: this message reaches logs.
                    raise ValueError(
                        f"{name.upper()} {reason}: set a random secret in production"
                        " (deploy/gen-secrets.sh)"
                    )
        return self

    def _secret_fields(self) -> dict[str, Any]:
        return {"cursor_secret": self.cursor_secret}

    @property
    def is_development(self) -> bool:
        return self.environment is Environment.development
