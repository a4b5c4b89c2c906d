"""POST /products/import: a JSON array, a text/csv body or a multipart file, all or nothing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from services.catalog import idempotency
from services.catalog.deps import Catalog
from services.catalog.idempotency import IdempotencyKeyHeader, Made
from services.catalog.imports import service
from services.catalog.imports.schemas import ImportResult
from services.catalog.products.api import PREFIX
from services.catalog.responses import json_response
from services.common import problems
from services.common.db import SessionDep
from services.common.security import AdminUser

router = APIRouter(prefix=PREFIX, tags=["catalog"])
FILE_FIELD = "file"
CONTENT_TYPES = ("application/json", "text/csv", "multipart/form-data")
BAD_MULTIPART = problems.register("bad-multipart", 400)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past `limit` bytes (checked while streaming)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise problems.body_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise problems.body_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def _single(body: bytes) -> Any:
    yield body


async def _multipart_file(request: Request, body: bytes) -> tuple[str, bytes]:
    """(kind, bytes) of the `file` part; kind from its content type or file name."""
    parser = MultiPartParser(
        Headers(raw=request.headers.raw), _single(body), max_files=1, max_fields=10
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise BAD_MULTIPART("Malformed multipart body.") from exc
    upload = form.get(FILE_FIELD)
    if not isinstance(upload, UploadFile):
        raise problems.VALIDATION(f"Send the file in the multipart field {FILE_FIELD!r}.")
    data = await upload.read()
    await form.close()
    name = (upload.filename or "").lower()
    kind = "json" if "json" in (upload.content_type or "") or name.endswith(".json") else "csv"
    return kind, data


@router.post(
    "/products/import",
    status_code=201,
    response_model=ImportResult,
    summary="Bulk import (admin; JSON array, text/csv or multipart file; all or nothing)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/ProductCreate"},
                    }
                },
                "text/csv": {"schema": {"type": "string"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {FILE_FIELD: {"type": "string", "format": "binary"}},
                        "required": [FILE_FIELD],
                    }
                },
            },
        }
    },
    responses={
        422: {"description": "Row-level errors: errors [{row, field, message}]"},
        413: {"description": "Too many rows or bytes"},
        415: {"description": "Unsupported content type"},
    },
    name="importProducts",
)
async def import_products(
    request: Request,
    session: SessionDep,
    admin: AdminUser,
    catalog: Catalog,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in CONTENT_TYPES:
        raise problems.UNSUPPORTED_MEDIA_TYPE(
            "Send application/json, text/csv or multipart/form-data."
        )
    body = await read_body(request, catalog.settings.import_max_bytes)
    if content_type == "multipart/form-data":
        kind, data = await _multipart_file(request, body)
    else:
        kind, data = ("json" if content_type == "application/json" else "csv"), body
    rows = service.rows_from_json(data) if kind == "json" else service.rows_from_csv(data)

    async def make() -> Made:
        ids = await service.import_products(
            session, catalog.reads, rows, catalog.settings.import_max_rows
        )
        result = ImportResult(imported=len(ids), ids=ids)
        return 201, result.model_dump_json().encode(), None

    result = await idempotency.run_idempotent(
        session,
        caller=admin.user_id,
        key=idempotency_key,
        request_hash=idempotency.fingerprint(request.url.path, kind.encode() + b"\n" + data),
        ttl_hours=catalog.settings.idempotency_ttl_hours,
        make=make,
    )
    if isinstance(result, Response):
        return result
    return json_response(result[1], status_code=result[0])
