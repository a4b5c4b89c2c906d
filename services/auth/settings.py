"""Settings of the auth service: the shared ones plus AUTH_* fields."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field

from services.common.settings import DEV_SECRET, CommonSettings, Environment


def _alias(name: str) -> Any:
    # AUTH_ prefix in the environment; the bare field name still works in code and tests.
    return AliasChoices(f"AUTH_{name.upper()}", name)


class AuthSettings(CommonSettings):
    service_name: str = "auth"

    # Secret the keys at rest derive from (HKDF): the private signing keys' encryption and
    # the device tokens' MAC. In production: 32+ random characters, no published value.
    key_encryption_secret: str = Field(
        default=DEV_SECRET, validation_alias=_alias("key_encryption_secret")
    )
    # Seals the links in verification and reset emails (outbox, queued job, dead letter):
    # the same value as the worker's, which opens them. Refused in production if weak.
    email_link_secret: str = Field(
        default=DEV_SECRET, validation_alias=AliasChoices("EMAIL_LINK_SECRET", "email_link_secret")
    )
    # A new key is published this long before it signs, so verifiers that cached the
    # JWKS just before a rotation learn it first (0: sign at once).
    key_activation_delay_seconds: int = Field(
        default=0, ge=0, validation_alias=_alias("key_activation_delay_seconds")
    )
    # How long a worker of this service keeps the signing key in memory.
    key_cache_seconds: int = Field(default=60, ge=1, validation_alias=_alias("key_cache_seconds"))

    # Lifetimes of access tokens, refresh tokens, email-verification and reset links;
    # whether an unverified account may log in (its token says email_verified=false).
    access_token_ttl_seconds: int = Field(
        default=900, ge=30, validation_alias=_alias("access_token_ttl_seconds")
    )
    refresh_token_ttl_seconds: int = Field(
        default=30 * 86400, ge=60, validation_alias=_alias("refresh_token_ttl_seconds")
    )
    verify_token_ttl_seconds: int = Field(
        default=48 * 3600, ge=60, validation_alias=_alias("verify_token_ttl_seconds")
    )
    reset_token_ttl_seconds: int = Field(
        default=3600, ge=60, validation_alias=_alias("reset_token_ttl_seconds")
    )
    allow_unverified_login: bool = Field(
        default=True, validation_alias=_alias("allow_unverified_login")
    )

    app_url: str = Field(  # the frontend that email links point to
        default="http://localhost:3000", validation_alias=AliasChoices("APP_URL", "app_url")
    )

    # argon2id, OWASP minimum by default (m=19 MiB, t=2, p=1); tests lower the memory.
    argon2_memory_kib: int = Field(
        default=19456, ge=8, validation_alias=_alias("argon2_memory_kib")
    )
    argon2_time_cost: int = Field(default=2, ge=1, validation_alias=_alias("argon2_time_cost"))
    argon2_parallelism: int = Field(default=1, ge=1, validation_alias=_alias("argon2_parallelism"))
    # Password hashes run at once per worker (each holds argon2_memory_kib); more wait.
    # Workers x this should not exceed the cores: more never hashes faster, it only takes
    # CPU from reads (docs/performance.md, *Admission policy*).
    hash_concurrency: int = Field(default=1, ge=1, validation_alias=_alias("hash_concurrency"))
    # Hashes that may wait per worker; past that a login or register gets a 503.
    hash_queue_limit: int = Field(default=32, ge=0, validation_alias=_alias("hash_queue_limit"))
    # Longest a hash may wait for a slot (ms): a login that would wait longer (judged at
    # arrival from the measured hash time, and again while it waits) gets a 503 at once.
    hash_max_wait_ms: int = Field(
        default=100, ge=1, le=10_000, validation_alias=_alias("hash_max_wait_ms")
    )
    # CPU niceness of the hashing threads (Linux; 0 = same priority as the requests). 10:
    # the event loop that refuses excess logins and serves refreshes runs before a hash.
    hash_nice: int = Field(default=10, ge=0, le=19, validation_alias=_alias("hash_nice"))
    # Hash in Linux's SCHED_IDLE class: a request's thread that wakes up preempts a hash.
    hash_sched_idle: bool = Field(default=True, validation_alias=_alias("hash_sched_idle"))

    # Rate limits in the `limits` notation ("N/second|minute|hour|day"), fixed windows in Redis.
    rate_login_ip: str = Field(default="30/minute", validation_alias=_alias("rate_login_ip"))
    rate_login_account: str = Field(
        default="10/minute", validation_alias=_alias("rate_login_account")
    )
    rate_register_ip: str = Field(default="10/hour", validation_alias=_alias("rate_register_ip"))
    rate_email_ip: str = Field(default="10/hour", validation_alias=_alias("rate_email_ip"))
    rate_email_account: str = Field(default="3/hour", validation_alias=_alias("rate_email_account"))
    # Lockout: after `lockout_threshold` consecutive failures, each further failure locks
    # the account for base * 2^(n - threshold) seconds, never more than the cap.
    lockout_threshold: int = Field(default=5, ge=1, validation_alias=_alias("lockout_threshold"))
    lockout_base_seconds: int = Field(
        default=30, ge=1, validation_alias=_alias("lockout_base_seconds")
    )
    lockout_max_seconds: int = Field(
        default=900, ge=1, validation_alias=_alias("lockout_max_seconds")
    )
    # Lifetime of a device token (OWASP device cookies, docs/auth.md): logins from a device
    # that logged in before are locked out on their own, not with every other client.
    device_token_ttl_seconds: int = Field(
        default=180 * 86400, ge=60, validation_alias=_alias("device_token_ttl_seconds")
    )
    # Register, resend-verification and forgot-password answer no sooner than this, so
    # the extra writes for an existing account (token, email) cannot be timed.
    uniform_response_seconds: float = Field(
        default=0.25, ge=0, le=5, validation_alias=_alias("uniform_response_seconds")
    )

    # Relay + event consumer; tests that drive them by hand turn them off.
    background_tasks: bool = Field(default=True, validation_alias=_alias("background_tasks"))

    # Seed a first admin at startup, in development only.
    bootstrap_admin_email: str | None = Field(
        default=None, validation_alias=_alias("bootstrap_admin_email")
    )
    bootstrap_admin_password: str | None = Field(
        default=None, validation_alias=_alias("bootstrap_admin_password")
    )

    def _secret_fields(self) -> dict[str, Any]:
        return super()._secret_fields() | {
            "auth_key_encryption_secret": self.key_encryption_secret,
            "email_link_secret": self.email_link_secret,
        }

    @property
    def bootstrap_allowed(self) -> bool:
        return self.environment is Environment.development
