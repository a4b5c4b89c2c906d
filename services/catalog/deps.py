"""What the catalog keeps per process (built at startup, closed at shutdown), provided
the kit's one way (services.common.state), and the typed dependency the routes take."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from services.catalog.products.fast_reads import POOL_SIZE, DirectRows
from services.catalog.products.reads import ProductReads, RowSource, SessionRows
from services.catalog.settings import CatalogSettings
from services.common.pagination import CursorCodec
from services.common.state import provide, provided, state_of


@dataclass
class CatalogResources:
    settings: CatalogSettings
    session_factory: async_sessionmaker[AsyncSession]
    reads: ProductReads
    product_cursors: CursorCodec
    category_cursors: CursorCodec
    direct_rows: DirectRows | None  # CATALOG_FAST_READS only


async def startup(app: FastAPI) -> None:
    settings: CatalogSettings = app.state.settings
    session_rows = SessionRows(app.state.session_factory)
    direct_rows = None
    if settings.fast_reads:
        direct_rows = DirectRows(
            app.state.engine,
            session_rows,
            size=min(POOL_SIZE, settings.db_pool_size),
            acquire_timeout=settings.db_pool_timeout,
            statement_cache_size=settings.db_statement_cache_size,
            application_name=settings.service_name,
        )
        if settings.otel_enabled:
            direct_rows.enable_tracing()
    rows: RowSource = direct_rows or session_rows
    provide(
        app,
        CatalogResources(
            settings=settings,
            session_factory=app.state.session_factory,
            reads=ProductReads(
                app.state.redis,
                rows,
                product_ttl=settings.product_cache_ttl_seconds,
                list_ttl=settings.list_cache_ttl_seconds,
            ),
            product_cursors=CursorCodec(settings.cursor_secret, "catalog-products"),
            category_cursors=CursorCodec(settings.cursor_secret, "catalog-categories"),
            direct_rows=direct_rows,
        ),
    )


async def shutdown(app: FastAPI) -> None:
    resources = provided(app, CatalogResources)
    if resources.direct_rows is not None:
        await resources.direct_rows.close()
    await resources.reads.close()


Catalog = Annotated[CatalogResources, Depends(state_of(CatalogResources))]


def started_reads(app: FastAPI) -> ProductReads | None:
    """The process's cached reads once startup has run (the fast reads' ASGI layer)."""
    try:
        return provided(app, CatalogResources).reads
    except TypeError:
        return None
