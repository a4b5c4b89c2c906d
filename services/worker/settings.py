"""Settings of the worker: SMTP_* and MAIL_FROM (shared names), WORKER_* for its own knobs."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field, SecretStr, model_validator

from services.common.settings import DEV_SECRET, CommonSettings


class WorkerSettings(CommonSettings):
    service_name: str = "worker"

    # HTTP server for /healthz, /readyz and /metrics only.
    worker_host: str = "0.0.0.0"  # noqa: S104 - a container listens on every interface
    worker_port: int = Field(default=8004, ge=1, le=65535)

    # SMTP relay for outgoing mail; the From header of every message.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_tls: bool = False  # implicit TLS (port 465)
    smtp_timeout: float = Field(default=10.0, gt=0)
    mail_from: str = "Shopstack <no-reply@shopstack.local>"

    # Opens the links auth sealed into verification and reset emails (the same value as
    # auth's EMAIL_LINK_SECRET). Refused in production if weak.
    email_link_secret: str = Field(
        default=DEV_SECRET, validation_alias=AliasChoices("EMAIL_LINK_SECRET", "email_link_secret")
    )

    # PEM bundle of the CA that signed the relay's certificate (a private relay); the
    # system's CAs otherwise. Certificates are always verified.
    smtp_ca_file: str | None = None

    # Jobs processed at once by this process.
    worker_concurrency: int = Field(default=10, ge=1)
    # Sends tried before a message is dead-lettered (transient SMTP failures only;
    # a permanent 5xx refusal or a bad message dies at once).
    worker_max_attempts: int = Field(default=8, ge=1)
    # Exponential backoff with full jitter: try n waits random(0, delay * 2**(n-1)), capped.
    worker_retry_delay_seconds: float = Field(default=2.0, ge=0)
    worker_retry_max_delay_seconds: float = Field(default=300.0, gt=0)
    # A job whose worker stopped heartbeating this long is swept and retried.
    worker_job_heartbeat_seconds: int = Field(default=15, ge=1)
    worker_job_timeout_seconds: int = Field(default=60, ge=1)
    worker_sweep_interval_seconds: int = Field(default=10, ge=1)
    # How long a sweep waits for a stuck job's owner to acknowledge the abort.
    worker_sweep_abort_seconds: float = Field(default=5.0, ge=0)
    worker_shutdown_grace_seconds: float = Field(default=20.0, ge=0)
    # How often queue depth, oldest age and event-consumer lag are sampled.
    worker_sample_interval_seconds: float = Field(default=5.0, gt=0)

    def _secret_fields(self) -> dict[str, Any]:
        return super()._secret_fields() | {"email_link_secret": self.email_link_secret}

    @model_validator(mode="after")
    def _lock_outlives_a_job(self) -> WorkerSettings:
        # A job holds its advisory lock in an open transaction while it sends: a shorter
        # idle-in-transaction limit would end that session (and the lock) mid-send, and
        # a second run could send the same email again.
        idle = self.db_idle_in_transaction_timeout
        if idle and idle <= self.worker_job_timeout_seconds:
            raise ValueError(
                "DB_IDLE_IN_TRANSACTION_TIMEOUT must be 0 or longer than WORKER_JOB_TIMEOUT_SECONDS"
            )
        return self
