"""The exact JSON bytes the catalog answers (and caches), and responses carrying them."""

from __future__ import annotations

from typing import Any

from fastapi import Response
from pydantic import BaseModel

from services.common.pagination import Page, PageResult

JSON = "application/json"


def model_json(model: type[BaseModel], row: Any) -> bytes:
    return model.model_validate(row).model_dump_json().encode()


def page_json(model: type[BaseModel], page: PageResult[Any]) -> bytes:
    items = [model.model_validate(row) for row in page.items]
    body = Page[model](  # type: ignore[valid-type]
        items=items, next_cursor=page.next_cursor, prev_cursor=page.prev_cursor
    )
    return body.model_dump_json().encode()


def json_response(
    body: bytes,
    *,
    status_code: int = 200,
    etag: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    all_headers = dict(headers or {})
    if etag:
        all_headers["ETag"] = etag
    return Response(body, status_code=status_code, media_type=JSON, headers=all_headers)
