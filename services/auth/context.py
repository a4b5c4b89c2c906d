"""The per-process objects the auth business rules need, built once in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from services.auth.devices import DeviceTokens
from services.auth.keys import KeyStore
from services.auth.passwords import PasswordHasher
from services.auth.ratelimit import Limit, Lockout, RateLimiter
from services.auth.settings import AuthSettings


@dataclass
class Limits:
    login_ip: Limit
    login_account: Limit
    register_ip: Limit
    email_ip: Limit
    email_account: Limit

    @classmethod
    def from_settings(cls, s: AuthSettings) -> Limits:
        return cls(
            login_ip=Limit.parse("auth_login_ip", s.rate_login_ip),
            login_account=Limit.parse("auth_login_account", s.rate_login_account),
            register_ip=Limit.parse("auth_register_ip", s.rate_register_ip),
            email_ip=Limit.parse("auth_email_ip", s.rate_email_ip),
            email_account=Limit.parse("auth_email_account", s.rate_email_account),
        )


@dataclass
class AuthContext:
    settings: AuthSettings
    redis: aioredis.Redis
    hasher: PasswordHasher
    keys: KeyStore
    limiter: RateLimiter
    lockout: Lockout
    limits: Limits
    devices: DeviceTokens


@dataclass(frozen=True, slots=True)
class Client:
    """Who is calling, as far as the session list and rate limits care."""

    ip: str
    user_agent: str | None
