"""The catalog service factory: `gunicorn 'services.catalog.app:create_app()'`."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware import Middleware

from services.catalog import api, api_categories, api_import
from services.catalog.hotread import HotProductRead
from services.catalog.janitor import idempotency_janitor
from services.catalog.models import Outbox
from services.catalog.settings import CatalogSettings
from services.catalog.state import shutdown, startup
from services.common.app import ServiceSpec
from services.common.app import create_app as build_app
from services.common.jwt import JwksFetcher
from services.common.relay import relay_task


def create_app(
    settings: CatalogSettings | None = None, *, jwks_fetcher: JwksFetcher | None = None
) -> FastAPI:
    settings = settings or CatalogSettings()
    background = (
        [relay_task(Outbox, "catalog"), idempotency_janitor] if settings.background_tasks else []
    )
    app = build_app(
        ServiceSpec(
            name="catalog",
            settings=settings,
            # import router first: its literal path must win over /products/{product_id}
            routers=[api_import.router, api.router, api_categories.router],
            title="Catalog service",
            description="Categories and products: public reads (cached), admin writes.",
            on_startup=[startup],
            on_shutdown=[shutdown],
            background=background,
            jwks_fetcher=jwks_fetcher,
        )
    )
    # Innermost (inside the factory's ObservabilityMiddleware): cached anonymous product
    # reads are answered before FastAPI's routing and dependencies (services/catalog/hotread.py).
    app.user_middleware.append(Middleware(HotProductRead))
    return app
