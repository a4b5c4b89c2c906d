"""POST /products/import: a JSON array, a text/csv body or a multipart file, all or nothing."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from services.catalog import idempotency, importer
from services.catalog.api import PREFIX, IdempotencyKeyHeader, Made, run_idempotent
from services.catalog.http import json_response, read_body
from services.catalog.state import catalog
from services.common.db import SessionDep
from services.common.errors import ProblemError
from services.common.security import AdminUser

router = APIRouter(prefix=PREFIX, tags=["catalog"])
FILE_FIELD = "file"


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
        raise ProblemError(400, "Malformed multipart body.", type_="bad-multipart") from exc
    upload = form.get(FILE_FIELD)
    if not isinstance(upload, UploadFile):
        raise ProblemError(
            422, f"Send the file in the multipart field {FILE_FIELD!r}.", type_="validation"
        )
    data = await upload.read()
    await form.close()
    name = (upload.filename or "").lower()
    kind = "json" if "json" in (upload.content_type or "") or name.endswith(".json") else "csv"
    return kind, data


@router.post(
    "/products/import",
    status_code=201,
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
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    state = catalog(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("application/json", "text/csv", "multipart/form-data"):
        raise ProblemError(
            415,
            "Send application/json, text/csv or multipart/form-data.",
            type_="unsupported-media-type",
        )
    body = await read_body(request, state.settings.import_max_bytes)
    if content_type == "multipart/form-data":
        kind, data = await _multipart_file(request, body)
    else:
        kind, data = ("json" if content_type == "application/json" else "csv"), body
    rows = importer.rows_from_json(data) if kind == "json" else importer.rows_from_csv(data)

    async def make() -> Made:
        ids = await importer.import_products(session, rows, state.settings.import_max_rows)
        payload = json.dumps({"imported": len(ids), "ids": [str(i) for i in ids]}).encode()
        return 201, payload, None

    result = await run_idempotent(
        session,
        state,
        caller=admin.user_id,
        key=idempotency_key,
        request_hash=idempotency.fingerprint(request.url.path, kind.encode() + b"\n" + data),
        make=make,
    )
    if isinstance(result, Response):
        return result
    await session.commit()
    await state.cache.invalidate_lists()
    return json_response(result[1], status_code=result[0])
