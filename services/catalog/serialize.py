"""Rows to the exact JSON bytes the API returns (and the cache stores)."""

from __future__ import annotations

from typing import Any

from services.catalog.schemas import CategoryOut, ProductOut
from services.common.pagination import Page, PageResult


def product_json(row: Any) -> bytes:
    return ProductOut.model_validate(row).model_dump_json().encode()


def category_json(row: Any) -> bytes:
    return CategoryOut.model_validate(row).model_dump_json().encode()


def product_page_json(page: PageResult[Any]) -> bytes:
    items = [ProductOut.model_validate(r) for r in page.items]
    return (
        Page[ProductOut](items=items, next_cursor=page.next_cursor, prev_cursor=page.prev_cursor)
        .model_dump_json()
        .encode()
    )


def category_page_json(page: PageResult[Any]) -> bytes:
    items = [CategoryOut.model_validate(r) for r in page.items]
    return (
        Page[CategoryOut](items=items, next_cursor=page.next_cursor, prev_cursor=page.prev_cursor)
        .model_dump_json()
        .encode()
    )
