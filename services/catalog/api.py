"""Product endpoints (HTTP only): public reads, admin writes, stock adjustments."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from sqlmodel.ext.asyncio.session import AsyncSession

from services.catalog import idempotency, listing, service
from services.catalog.cache import body_etag, pack, unpack, version_etag
from services.catalog.hotread import KNOWN_MISS
from services.catalog.http import expected_version, json_response, not_modified
from services.catalog.pkread import FALLBACK_ERRORS
from services.catalog.schemas import (
    ProductCreate,
    ProductListQuery,
    ProductOut,
    ProductUpdate,
    StockChange,
)
from services.catalog.serialize import product_json, product_page_json
from services.catalog.state import CatalogState, catalog
from services.common.db import SessionDep
from services.common.errors import ProblemError
from services.common.jwt import Principal
from services.common.pagination import Page, link_header
from services.common.params import NO_NUL
from services.common.security import AdminUser, OptionalUser, authenticate, bearer_token

log = logging.getLogger("services.catalog.api")
PREFIX = "/api/v1/catalog"
router = APIRouter(prefix=PREFIX, tags=["catalog"])
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Retry-safe creates (1-255 visible ASCII characters)",
        # Documented, not enforced here: idempotency.check_key answers 400 for a bad key.
        json_schema_extra={"pattern": r"^[\x21-\x7e]{1,255}$"},
    ),
]
ProductId = uuid.UUID
Made = tuple[int, bytes, str | None]  # status, body, Location


def _is_admin(principal: Principal | None) -> bool:
    return principal is not None and principal.is_admin


def visible_status(requested: str | None, principal: Principal | None) -> str | None:
    """Admins see every status (or the one they ask for); everyone else active only."""
    if _is_admin(principal):
        return requested
    if requested not in (None, "active"):
        raise ProblemError(403, "Filtering by status needs the admin role.", type_="forbidden")
    return "active"


def _product_response(row: Any, status_code: int = 200, location: str | None = None) -> Response:
    headers = {"Location": location} if location else None
    return json_response(
        product_json(row), status_code=status_code, etag=version_etag(row.version), headers=headers
    )


async def _invalidate(state: CatalogState, *product_ids: uuid.UUID) -> None:
    for product_id in product_ids:
        await state.cache.invalidate_product(product_id)
    if not product_ids:
        await state.cache.invalidate_lists()


# ---- public reads ---------------------------------------------------------------------


@router.get(
    "/products",
    response_model=Page[ProductOut],
    summary="List products",
    responses={403: {"description": "Filtering by status needs the admin role"}},
    name="listProducts",
)
async def list_products(
    request: Request, query: Annotated[ProductListQuery, Query()], principal: OptionalUser
) -> Response:
    state = catalog(request)
    if (
        query.min_price is not None
        and query.max_price is not None
        and (query.min_price > query.max_price)
    ):
        raise ProblemError(422, "min_price is greater than max_price.", type_="validation")
    filters = listing.ProductFilter(
        status=visible_status(query.status, principal),
        category=query.category,
        min_price=query.min_price,
        max_price=query.max_price,
        in_stock=query.in_stock,
        q=query.q,
    )
    page_id = filters.page_id(query.sort, query.limit, query.cursor)

    async def load() -> bytes:
        async with state.session_factory() as session:
            page = await listing.list_products(
                session,
                filters,
                sort=query.sort,
                cursor=query.cursor,
                limit=query.limit,
                codec=state.product_cursors,
            )
        body = product_page_json(page)
        return pack([body_etag(body), page.next_cursor or "", page.prev_cursor or ""], body)

    entry = await state.cache.get_list(page_id, load)
    assert entry is not None
    (etag, next_cursor, prev_cursor), body = unpack(entry)
    headers = {}
    link = link_header(request, next_cursor or None, prev_cursor or None)
    if link:
        headers["Link"] = link
    if not_modified(request, etag):
        return Response(status_code=304, headers={"ETag": etag, **headers})
    return json_response(body, etag=etag, headers=headers)


async def _load_product(state: CatalogState, product_id: uuid.UUID, admin: bool) -> bytes | None:
    try:
        # One round trip on a plain asyncpg connection (services/catalog/pkread.py).
        record = await state.reader.product(product_id, only_active=not admin)
        row: Any = None if record is None else dict(record.items())
    except FALLBACK_ERRORS as exc:
        log.warning("product read falls back to the session: %s", type(exc).__name__)
        async with state.session_factory() as session:
            row = await service.get_product(session, product_id=product_id, only_active=not admin)
    if row is None:
        return None
    out = ProductOut.model_validate(row)
    return pack([version_etag(out.version)], out.model_dump_json().encode())


@router.get(
    "/products/{product_id}",
    response_model=ProductOut,
    summary="One product (cached; ETag / If-None-Match)",
    responses={304: {"description": "Not modified"}, 404: {"description": "No such product"}},
    name="getProduct",
)
async def get_product(product_id: ProductId, request: Request) -> Response:
    # One Redis GET, the cached bytes are the body (anonymous hits never get here: see
    # services/catalog/hotread.py). The principal is resolved by hand, not by the
    # OptionalUser dependency, so an anonymous miss skips that dependency chain too.
    token = bearer_token(request.headers.get("authorization"))
    principal = None if token is None else await authenticate(request, token)
    state: CatalogState = request.app.state.catalog
    admin = _is_admin(principal)
    entry = await state.cache.products.get_or_load(
        state.cache.product_key(product_id, admin=admin),
        lambda: _load_product(state, product_id, admin),
        # HotProductRead has just looked this (public) key up and found nothing.
        known_miss=not admin and request.scope.get(KNOWN_MISS) is True,
    )
    if entry is None:
        raise service.not_found()
    meta, _, body = entry.partition(b"\n")
    etag = meta.decode("ascii")
    if not_modified(request, etag):
        return Response(status_code=304, headers={"ETag": etag})
    return Response(body, media_type="application/json", headers={"ETag": etag})


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
    row = await service.get_product(session, sku=sku, only_active=not _is_admin(principal))
    if row is None:
        raise service.not_found()
    etag = version_etag(row.version)
    if not_modified(request, etag):
        return Response(status_code=304, headers={"ETag": etag})
    return _product_response(row)


# ---- admin writes ---------------------------------------------------------------------


async def run_idempotent(
    session: AsyncSession,
    state: CatalogState,
    *,
    caller: str,
    key: str | None,
    request_hash: str,
    make: Callable[[], Awaitable[Made]],
) -> Response | Made:
    """Run `make` once per (caller, key); a retry gets the stored answer back."""
    if key is not None:
        idempotency.check_key(key)
        stored = await idempotency.claim(
            session,
            caller=caller,
            key=key,
            request_hash=request_hash,
            ttl_hours=state.settings.idempotency_ttl_hours,
        )
        if stored is not None:
            return stored.response()
    status_code, body, location = await make()
    if key is not None:
        await idempotency.remember(
            session,
            caller=caller,
            key=key,
            status_code=status_code,
            body=body,
            location=location,
        )
    return status_code, body, location


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
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    state = catalog(request)
    created: list[Any] = []

    async def make() -> Made:
        row = await service.create_product(session, body)
        created.append(row)
        return 201, product_json(row), f"{PREFIX}/products/{row.id}"

    result = await run_idempotent(
        session,
        state,
        caller=admin.user_id,
        key=idempotency_key,
        request_hash=idempotency.fingerprint(request.url.path, body.model_dump_json().encode()),
        make=make,
    )
    if isinstance(result, Response):
        return result
    await session.commit()  # commit, then invalidate: no reader can re-cache the old state
    await _invalidate(state, created[0].id)
    status_code, payload, location = result
    return json_response(
        payload,
        status_code=status_code,
        etag=version_etag(created[0].version),
        headers={"Location": location} if location else None,
    )


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
) -> Response:
    expected = expected_version(request, required=True)
    row = await service.update_product(session, product_id, expected, body)
    await session.commit()
    await _invalidate(catalog(request), product_id)
    return _product_response(row)


@router.post(
    "/products/{product_id}/archive",
    response_model=ProductOut,
    summary="Archive (admin)",
    name="archiveProduct",
)
async def archive_product(
    product_id: ProductId, request: Request, session: SessionDep, admin: AdminUser
) -> Response:
    row = await service.archive_product(session, product_id)
    await session.commit()
    await _invalidate(catalog(request), product_id)
    return _product_response(row)


@router.delete(
    "/products/{product_id}",
    status_code=204,
    summary="Delete (admin; If-Match optional)",
    name="deleteProduct",
)
async def delete_product(
    product_id: ProductId, request: Request, session: SessionDep, admin: AdminUser
) -> Response:
    expected = expected_version(request, required=False)
    await service.delete_product(session, product_id, expected)
    await session.commit()
    await _invalidate(catalog(request), product_id)
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
    request: Request,
    session: SessionDep,
    admin: AdminUser,
) -> Response:
    row = await service.adjust_stock(session, product_id, body.delta)
    await session.commit()
    await _invalidate(catalog(request), product_id)
    return _product_response(row)
