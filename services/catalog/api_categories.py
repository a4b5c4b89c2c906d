"""Category endpoints: public reads, admin writes (If-Match on PATCH, Idempotency-Key on POST)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from services.catalog import categories, idempotency, listing
from services.catalog.api import PREFIX, IdempotencyKeyHeader, Made, run_idempotent
from services.catalog.cache import version_etag
from services.catalog.http import expected_version, json_response, not_modified
from services.catalog.schemas import CategoryCreate, CategoryListQuery, CategoryOut, CategoryUpdate
from services.catalog.serialize import category_json, category_page_json
from services.catalog.service import not_found
from services.catalog.state import catalog
from services.common.db import SessionDep
from services.common.pagination import Page, link_header
from services.common.security import AdminUser

router = APIRouter(prefix=PREFIX, tags=["catalog"])


def _category_response(
    request: Request, row: Any, status_code: int = 200, location: str | None = None
) -> Response:
    etag = version_etag(row.version)
    if status_code == 200 and not_modified(request, etag):
        return Response(status_code=304, headers={"ETag": etag})
    headers = {"Location": location} if location else None
    return json_response(category_json(row), status_code=status_code, etag=etag, headers=headers)


@router.get(
    "/categories",
    response_model=Page[CategoryOut],
    summary="List categories",
    name="listCategories",
)
async def list_categories(
    request: Request, query: Annotated[CategoryListQuery, Query()], session: SessionDep
) -> Response:
    page = await listing.list_categories(
        session,
        parent=query.parent,
        root=query.root,
        sort=query.sort,
        cursor=query.cursor,
        limit=query.limit,
        codec=catalog(request).category_cursors,
    )
    link = link_header(request, page.next_cursor, page.prev_cursor)
    return json_response(category_page_json(page), headers={"Link": link} if link else None)


@router.get(
    "/categories/{category_id}",
    response_model=CategoryOut,
    summary="One category",
    name="getCategory",
)
async def get_category(category_id: uuid.UUID, request: Request, session: SessionDep) -> Response:
    row = await categories.get_category(session, category_id=category_id)
    if row is None:
        raise not_found("category")
    return _category_response(request, row)


@router.get(
    "/categories/by-slug/{slug}",
    response_model=CategoryOut,
    summary="One category by slug",
    name="getCategoryBySlug",
)
async def get_category_by_slug(
    slug: Annotated[str, Path(max_length=100)], request: Request, session: SessionDep
) -> Response:
    row = await categories.get_category(session, slug=slug)
    if row is None:
        raise not_found("category")
    return _category_response(request, row)


@router.post(
    "/categories",
    status_code=201,
    response_model=CategoryOut,
    summary="Create a category (admin; Idempotency-Key)",
    name="createCategory",
)
async def create_category(
    body: CategoryCreate,
    request: Request,
    session: SessionDep,
    admin: AdminUser,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    state = catalog(request)
    created: list[Any] = []

    async def make() -> Made:
        row = await categories.create_category(session, body)
        created.append(row)
        return 201, category_json(row), f"{PREFIX}/categories/{row.id}"

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
    await session.commit()
    await state.cache.invalidate_lists()
    return _category_response(request, created[0], 201, result[2])


@router.patch(
    "/categories/{category_id}",
    response_model=CategoryOut,
    summary="Update a category (admin; If-Match required)",
    responses={412: {"description": "Stale If-Match"}, 428: {"description": "No If-Match"}},
    name="updateCategory",
)
async def update_category(
    category_id: uuid.UUID,
    body: CategoryUpdate,
    request: Request,
    session: SessionDep,
    admin: AdminUser,
) -> Response:
    expected = expected_version(request, required=True)
    row = await categories.update_category(session, category_id, expected, body)
    await session.commit()
    await catalog(request).cache.invalidate_lists()  # moving a subtree changes category filters
    return json_response(category_json(row), etag=version_etag(row.version))


@router.delete(
    "/categories/{category_id}",
    status_code=204,
    summary="Delete a category (admin)",
    name="deleteCategory",
)
async def delete_category(
    category_id: uuid.UUID, request: Request, session: SessionDep, admin: AdminUser
) -> Response:
    expected = expected_version(request, required=False)
    detached = await categories.delete_category(session, category_id, expected)
    await session.commit()
    cache = catalog(request).cache
    for product_id in detached:
        await cache.invalidate_product(product_id)
    await cache.invalidate_lists()
    return Response(status_code=204)
