"""Category endpoints (HTTP only): public reads, admin writes (If-Match on PATCH,
Idempotency-Key on POST)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from services.catalog import idempotency
from services.catalog.categories import queries, service
from services.catalog.categories.schemas import (
    CategoryCreate,
    CategoryListQuery,
    CategoryOut,
    CategoryUpdate,
)
from services.catalog.deps import Catalog
from services.catalog.idempotency import IdempotencyKeyHeader
from services.catalog.products.api import PREFIX
from services.catalog.responses import json_response, model_json, page_json
from services.common import problems
from services.common.conditional import NOT_MODIFIED, etag, if_match_versions, none_match
from services.common.db import SessionDep
from services.common.pagination import Page, link_header
from services.common.security import AdminUser

router = APIRouter(prefix=PREFIX, tags=["catalog"])


def _category_response(
    request: Request, row: Any, status_code: int = 200, location: str | None = None
) -> Response:
    tag = etag(row.version)
    if status_code == 200 and none_match(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers={"ETag": tag})
    headers = {"Location": location} if location else None
    body = model_json(CategoryOut, row)
    return json_response(body, status_code=status_code, etag=tag, headers=headers)


def _found(row: Any) -> Any:
    if row is None:
        raise problems.not_found("category")
    return row


@router.get(
    "/categories",
    response_model=Page[CategoryOut],
    summary="List categories",
    name="listCategories",
)
async def list_categories(
    request: Request,
    query: Annotated[CategoryListQuery, Query()],
    session: SessionDep,
    catalog: Catalog,
) -> Response:
    page = await queries.list_categories(
        session,
        parent=query.parent,
        root=query.root,
        sort=query.sort,
        cursor=query.cursor,
        limit=query.limit,
        codec=catalog.category_cursors,
    )
    link = link_header(request, page.next_cursor, page.prev_cursor)
    return json_response(page_json(CategoryOut, page), headers={"Link": link} if link else None)


@router.get(
    "/categories/{category_id}",
    response_model=CategoryOut,
    summary="One category",
    responses=NOT_MODIFIED,
    name="getCategory",
)
async def get_category(category_id: uuid.UUID, request: Request, session: SessionDep) -> Response:
    row = _found(await queries.get_category(session, category_id=category_id))
    return _category_response(request, row)


@router.get(
    "/categories/by-slug/{slug}",
    response_model=CategoryOut,
    summary="One category by slug",
    responses=NOT_MODIFIED,
    name="getCategoryBySlug",
)
async def get_category_by_slug(
    slug: Annotated[str, Path(max_length=100)], request: Request, session: SessionDep
) -> Response:
    return _category_response(request, _found(await queries.get_category(session, slug=slug)))


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
    catalog: Catalog,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    def location(row: Any) -> str:
        return f"{PREFIX}/categories/{row.id}"

    row = await idempotency.create_once(
        session,
        request,
        body,
        caller=admin.user_id,
        key=idempotency_key,
        ttl_hours=catalog.settings.idempotency_ttl_hours,
        create=lambda: service.create_category(session, catalog.reads, body),
        answer=lambda row: (201, model_json(CategoryOut, row), location(row)),
    )
    if isinstance(row, Response):
        return row  # a retry: the first answer, replayed
    return _category_response(request, row, 201, location(row))


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
    catalog: Catalog,
) -> Response:
    expected = if_match_versions(request.headers.get("if-match"), required=True)
    row = await service.update_category(session, catalog.reads, category_id, expected, body)
    return json_response(model_json(CategoryOut, row), etag=etag(row.version))


@router.delete(
    "/categories/{category_id}",
    status_code=204,
    summary="Delete a category (admin)",
    name="deleteCategory",
)
async def delete_category(
    category_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    admin: AdminUser,
    catalog: Catalog,
) -> Response:
    expected = if_match_versions(request.headers.get("if-match"), required=False)
    await service.delete_category(session, catalog.reads, category_id, expected)
    return Response(status_code=204)
