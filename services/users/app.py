"""The users service factory: `gunicorn 'services.users.app:create_app()'`."""

from __future__ import annotations

import contextlib

from fastapi import FastAPI

from services.common.app import ServiceSpec
from services.common.app import create_app as build_app
from services.common.cache import Cache
from services.common.jwt import JwksFetcher
from services.common.leanredis import LeanRedis
from services.common.relay import relay_task
from services.common.state import provide, provided
from services.users import api
from services.users.consumers import consume_events
from services.users.models import Outbox
from services.users.settings import UsersSettings
from services.users.state import UsersState

# The name of the lean connection the profile cache reads over (CLIENT LIST).
FAST_CLIENT_NAME = "users-cache-reads"


async def startup(app: FastAPI) -> None:
    settings: UsersSettings = app.state.settings
    # Cache reads (GET) over one pipelined connection per process, as catalog's do
    # (services/common/leanredis.py); writes and locks stay on redis-py.
    reads = LeanRedis.for_client(app.state.redis, client_name=FAST_CLIENT_NAME)
    cache = Cache(app.state.redis, "profiles", ttl=settings.profile_cache_ttl_seconds, fast=reads)
    provide(app, UsersState(profile_cache=cache, cache_reads=reads))


async def shutdown(app: FastAPI) -> None:
    with contextlib.suppress(TypeError):  # startup failed before the state was built
        reads = provided(app, UsersState).cache_reads
        if reads is not None:
            await reads.close()


def create_app(
    settings: UsersSettings | None = None, *, jwks_fetcher: JwksFetcher | None = None
) -> FastAPI:
    settings = settings or UsersSettings()
    background = [relay_task(Outbox, "users"), consume_events] if settings.background_tasks else []
    return build_app(
        ServiceSpec(
            name="users",
            settings=settings,
            routers=[api.router],
            title="Users service",
            description="Profiles of signed-in users and the admin user directory.",
            on_startup=[startup],
            on_shutdown=[shutdown],
            background=background,
            jwks_fetcher=jwks_fetcher,
        )
    )
