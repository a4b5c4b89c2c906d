"""Product endpoints (HTTP only): public reads, admin writes, stock adjustments."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from services.catalog import idempotency
from services.catalog.deps import Catalog, CatalogResources
from services.catalog.idempotency import IdempotencyKeyHeader
from services.catalog.products import queries, service
from services.catalog.products.reads import KNOWN_MISS, CachedAnswer, answer, body_etag
from services.catalog.products.schemas import (
    ProductCreate,
    ProductListQuery,
    ProductOut,
    ProductUpdate,
    StockChange,
)
from services.catalog.responses import json_response, model_json, page_json
from services.common import problems
from services.common.conditional import NOT_MODIFIED, etag, if_match_versions, none_match
from services.common.db import SessionDep
from services.common.jwt import Principal
from services.common.pagination import Page, link_header
from services.common.params import NO_NUL
from services.common.security import AdminUser, OptionalUser, authenticate, bearer_token
from services.common.state import provided

PREFIX = "/api/v1/catalog"
router = APIRouter(prefix=PREFIX, tags=["catalog"])
ProductId = uuid.UUID


def _is_admin(principal: Principal | None) -> bool:
    return principal is not None and principal.is_admin


def visible_status(requested: str | None, principal: Principal | None) -> str | None:
    """Admins see every status (or the one they ask for); everyone else active only."""
    if _is_admin(principal):
        return requested
    if requested not in (None, "active"):
        raise problems.FORBIDDEN("Filtering by status needs the admin role.")
    return "active"


def _product_response(row: Any, status_code: int = 200, location: str | None = None) -> Response:
    headers = {"Location": location} if location else None
    return json_response(
        model_json(ProductOut, row),
        status_code=status_code,
        etag=etag(row.version),
        headers=headers,
    )


def _expected(request: Request, *, required: bool) -> list[int] | None:
    """The versions If-Match accepts (None: any); a write whose row has another version is a 412."""
    return if_match_versions(request.headers.get("if-match"), required=required)


# ---- public reads ---------------------------------------------------------------------


@router.get(
    "/products",
    response_model=Page[ProductOut],
    summary="List products",
    responses={**NOT_MODIFIED, 403: {"description": "Filtering by status needs the admin role"}},
    name="listProducts",
)
async def list_products(
    request: Request,
    query: Annotated[ProductListQuery, Query()],
    principal: OptionalUser,
    catalog: Catalog,
) -> Response:
    if (
        query.min_price is not None
        and query.max_price is not None
        and (query.min_price > query.max_price)
    ):
        raise problems.VALIDATION("min_price is greater than max_price.")
    filters = queries.ProductFilter(
        status=visible_status(query.status, principal),
        category=query.category,
        min_price=query.min_price,
        max_price=query.max_price,
        in_stock=query.in_stock,
        q=query.q,
    )

    async def load() -> CachedAnswer:
        async with catalog.session_factory() as session:
            page = await queries.list_products(
                session,
                filters,
                sort=query.sort,
                cursor=query.cursor,
                limit=query.limit,
                codec=catalog.product_cursors,
            )
        body = page_json(ProductOut, page)
        return CachedAnswer(body_etag(body), body, page.next_cursor, page.prev_cursor)

    cached = await catalog.reads.list_page(
        filters.page_id(query.sort, query.limit, query.cursor), load
    )
    link = link_header(request, cached.next_cursor, cached.prev_cursor)
    return answer(cached, request.headers.get("if-none-match"), link).response()


@router.get(
    "/products/{product_id}",
    response_model=ProductOut,
    summary="One product (cached; ETag / If-None-Match)",
    responses={**NOT_MODIFIED, 404: {"description": "No such product"}},
    name="getProduct",
)
async def get_product(product_id: ProductId, request: Request) -> Response:
    # The principal and the process state are reached by hand, not by dependencies, so
    # an anonymous miss skips that dependency chain (docs/performance.md).
    token = bearer_token(request.headers.get("authorization"))
    principal = None if token is None else await authenticate(request, token)
    admin = _is_admin(principal)
    cached = await provided(request.app, CatalogResources).reads.product(
        product_id, admin=admin, known_miss=not admin and request.scope.get(KNOWN_MISS) is True
    )
    if cached is None:
        raise problems.not_found("product")
    return answer(cached, request.headers.get("if-none-match"), None).response()


@router.get(
    "/products/by-sku/{sku}",
    response_model=ProductOut,
    summary="One product by SKU",
    name="getProductBySku",
)
async def get_product_by_sku(
    sku: Annotated[str, Path(max_length=64, pattern=NO_NUL)],
    request: Request,
    session: SessionDep,
    principal: OptionalUser,
) -> Response:
    row = await queries.get_product(session, sku=sku, only_active=not _is_admin(principal))
    if row is None:
        raise problems.not_found("product")
    if none_match(request.headers.get("if-none-match"), etag(row.version)):
        return Response(status_code=304, headers={"ETag": etag(row.version)})
    return _product_response(row)


# ---- admin writes ---------------------------------------------------------------------


@router.post(
    "/products",
    status_code=201,
    response_model=ProductOut,
    summary="Create a product (admin; Idempotency-Key)",
    name="createProduct",
)
async def create_product(
    body: ProductCreate,
    request: Request,
    session: SessionDep,
    admin: AdminUser,
    catalog: Catalog,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    def location(row: Any) -> str:
        return f"{PREFIX}/products/{row.id}"

    row = await idempotency.create_once(
        session,
        request,
        body,
        caller=admin.user_id,
        key=idempotency_key,
        ttl_hours=catalog.settings.idempotency_ttl_hours,
        create=lambda: service.create_product(session, catalog.reads, body),
        answer=lambda row: (201, model_json(ProductOut, row), location(row)),
    )
    if isinstance(row, Response):
        return row  # a retry: the first answer, replayed
    return _product_response(row, 201, location(row))


@router.patch(
    "/products/{product_id}",
    response_model=ProductOut,
    summary="Update a product (admin; If-Match required)",
    responses={412: {"description": "Stale If-Match"}, 428: {"description": "No If-Match"}},
    name="updateProduct",
)
async def update_product(
    product_id: ProductId,
    body: ProductUpdate,
    request: Request,
    session: SessionDep,
    admin: AdminUser,
    catalog: Catalog,
) -> Response:
    expected = _expected(request, required=True)
    row = await service.update_product(session, catalog.reads, product_id, expected, body)
    return _product_response(row)


@router.post(
    "/products/{product_id}/archive",
    response_model=ProductOut,
    summary="Archive (admin)",
    name="archiveProduct",
)
async def archive_product(
    product_id: ProductId, session: SessionDep, admin: AdminUser, catalog: Catalog
) -> Response:
    return _product_response(await service.archive_product(session, catalog.reads, product_id))


@router.delete(
    "/products/{product_id}",
    status_code=204,
    summary="Delete (admin; If-Match optional)",
    name="deleteProduct",
)
async def delete_product(
    product_id: ProductId, request: Request, session: SessionDep, admin: AdminUser, catalog: Catalog
) -> Response:
    expected = _expected(request, required=False)
    await service.delete_product(session, catalog.reads, product_id, expected)
    return Response(status_code=204)


@router.post(
    "/products/{product_id}/stock",
    response_model=ProductOut,
    summary="Adjust stock atomically (admin); 409 if it would go below zero",
    name="adjustStock",
)
async def adjust_stock(
    product_id: ProductId,
    body: StockChange,
    session: SessionDep,
    admin: AdminUser,
    catalog: Catalog,
) -> Response:
    return _product_response(
        await service.adjust_stock(session, catalog.reads, product_id, body.delta)
    )
