"""What the catalog keeps per process: caches and cursor codecs, built at startup."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from services.catalog.cache import CatalogCache
from services.catalog.pkread import READ_POOL_SIZE, ProductReader
from services.catalog.settings import CatalogSettings
from services.common.pagination import CursorCodec


@dataclass
class CatalogState:
    settings: CatalogSettings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    cache: CatalogCache
    product_cursors: CursorCodec
    category_cursors: CursorCodec
    reader: ProductReader


async def startup(app: FastAPI) -> None:
    settings: CatalogSettings = app.state.settings
    app.state.catalog = CatalogState(
        settings=settings,
        engine=app.state.engine,
        session_factory=app.state.session_factory,
        cache=CatalogCache(
            app.state.redis,
            product_ttl=settings.product_cache_ttl_seconds,
            list_ttl=settings.list_cache_ttl_seconds,
        ),
        product_cursors=CursorCodec(settings.cursor_secret, "catalog-products"),
        category_cursors=CursorCodec(settings.cursor_secret, "catalog-categories"),
        reader=ProductReader(
            app.state.engine,
            size=min(READ_POOL_SIZE, settings.db_pool_size),
            acquire_timeout=settings.db_pool_timeout,
            statement_cache_size=settings.db_statement_cache_size,
            application_name=settings.service_name,
        ),
    )
    if settings.otel_enabled:
        app.state.catalog.reader.enable_tracing()


async def shutdown(app: FastAPI) -> None:
    state: CatalogState | None = getattr(app.state, "catalog", None)
    if state is not None:
        await state.reader.close()
        await state.cache.close()


def catalog(request: Request) -> CatalogState:
    state: CatalogState = request.app.state.catalog
    return state
