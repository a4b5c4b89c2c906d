"""The auth service factory: `gunicorn 'services.auth.app:create_app()'`."""

from __future__ import annotations

import contextlib
import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from sqlalchemy.exc import IntegrityError

from services.auth.admin import AdminError, create_admin
from services.auth.api import jwks_router, router
from services.auth.consumers import consume_events
from services.auth.context import AuthContext, Limits
from services.auth.devices import DeviceTokens
from services.auth.keys import KeyStore, ensure_key
from services.auth.models import Outbox
from services.auth.passwords import PasswordHasher
from services.auth.ratelimit import Lockout, RateLimiter
from services.auth.settings import AuthSettings
from services.common.app import Hook, ServiceSpec
from services.common.app import create_app as build_app
from services.common.errors import ProblemError, problem_response
from services.common.jwt import JwksCache, JwksFetcher, TokenVerifier
from services.common.relay import relay_task
from services.common.state import provide, provided

log = logging.getLogger("services.auth")


def _startup(jwks_fetcher: JwksFetcher | None) -> Hook:
    async def start(app: FastAPI) -> None:
        settings: AuthSettings = app.state.settings
        if await ensure_key(app.state.session_factory, settings):
            log.info("created the first signing key")
        keys = KeyStore(app.state.session_factory, settings)
        hasher = PasswordHasher.for_settings(settings)
        provide(
            app,
            AuthContext(
                settings=settings,
                redis=app.state.redis,
                hasher=hasher,
                keys=keys,
                limiter=RateLimiter(app.state.redis),
                lockout=Lockout(
                    app.state.redis,
                    threshold=settings.lockout_threshold,
                    base_seconds=settings.lockout_base_seconds,
                    max_seconds=settings.lockout_max_seconds,
                ),
                limits=Limits.from_settings(settings),
                devices=DeviceTokens(
                    settings.key_encryption_secret, settings.device_token_ttl_seconds
                ),
            ),
        )
        # Auth verifies its own tokens from its key store, not over HTTP; an unknown kid
        # (a key rotated by another worker) is looked up again after at most a second.
        app.state.token_verifier = TokenVerifier(
            JwksCache(
                jwks_fetcher or keys.jwks,
                max_age=settings.key_cache_seconds,
                min_refresh_interval=1.0,
            ),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway=settings.jwt_leeway_seconds,
        )
        await _bootstrap_admin(app, settings, hasher)

    return start


async def _bootstrap_admin(app: FastAPI, settings: AuthSettings, hasher: PasswordHasher) -> None:
    email, password = settings.bootstrap_admin_email, settings.bootstrap_admin_password
    if not (email and password):
        return
    if not settings.bootstrap_allowed:
        log.warning("AUTH_BOOTSTRAP_ADMIN_* is ignored outside development")
        return
    try:
        await create_admin(app.state.session_factory, hasher, email, password)
        log.info("bootstrap admin created")
    except (AdminError, ProblemError):
        pass  # already there (another worker, or an earlier start), or refused by policy
    except IntegrityError:
        # Two gunicorn workers booting at once both saw no account; the other one's
        # insert won the unique email: the admin exists, so this worker carries on.
        log.info("bootstrap admin created by another worker")


async def _close_hasher(app: FastAPI) -> None:
    with contextlib.suppress(TypeError):  # startup failed before the context was built
        provided(app, AuthContext).hasher.close()


async def _redis_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # Rate limits, lockout and revocation need Redis: fail closed, never a 500.
    log.error("redis unavailable: %s", type(exc).__name__)
    return problem_response(
        503,
        detail="The service is temporarily unavailable.",
        instance=request.url.path,
        headers={"Retry-After": "2"},
    )


def create_app(
    settings: AuthSettings | None = None, *, jwks_fetcher: JwksFetcher | None = None
) -> FastAPI:
    settings = settings or AuthSettings()
    background = [relay_task(Outbox, "auth"), consume_events] if settings.background_tasks else []
    app = build_app(
        ServiceSpec(
            name="auth",
            settings=settings,
            routers=[router, jwks_router],
            title="Auth service",
            description="Accounts, logins, sessions, access and refresh tokens, signing keys.",
            on_startup=[_startup(jwks_fetcher)],
            on_shutdown=[_close_hasher],
            background=background,
            jwks_fetcher=jwks_fetcher,
        )
    )
    app.add_exception_handler(RedisError, _redis_unavailable)
    return app
