"""The catalog service factory: `gunicorn 'services.catalog.app:create_app()'`."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware import Middleware

from services.catalog.categories import api as categories_api
from services.catalog.deps import shutdown, started_reads, startup
from services.catalog.idempotency import purge_loop
from services.catalog.imports import api as imports_api
from services.catalog.models import Outbox
from services.catalog.products import api as products_api
from services.catalog.products.fast_reads import CachedPublicReads
from services.catalog.settings import CatalogSettings
from services.common.app import ServiceSpec
from services.common.app import create_app as build_app
from services.common.jwt import JwksFetcher
from services.common.relay import relay_task


def create_app(
    settings: CatalogSettings | None = None, *, jwks_fetcher: JwksFetcher | None = None
) -> FastAPI:
    settings = settings or CatalogSettings()
    background = [relay_task(Outbox, "catalog"), purge_loop] if settings.background_tasks else []
    app = build_app(
        ServiceSpec(
            name="catalog",
            settings=settings,
            # the import router first: its literal path must win over /products/{product_id}
            routers=[imports_api.router, products_api.router, categories_api.router],
            title="Catalog service",
            description="Categories and products: public reads (cached), admin writes.",
            on_startup=[startup],
            on_shutdown=[shutdown],
            background=background,
            jwks_fetcher=jwks_fetcher,
        )
    )
    if settings.fast_reads:
        # Innermost (inside the factory's ObservabilityMiddleware).
        app.user_middleware.append(Middleware(CachedPublicReads, reads_of=started_reads))
    return app
