"""Keyset (cursor) pagination: signed opaque cursors, unique tie-breakers, no OFFSET.

A cursor carries the sort keys of the row it points at, the direction, the sort
name and a fingerprint of the filters; it is HMAC-signed, so it cannot be forged
or replayed against another query (a 400, never a 500).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar
from urllib.parse import urlencode

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import and_, false, or_, tuple_
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Select
from starlette.requests import Request

from services.common import problems
from services.common.errors import ProblemError

T = TypeVar("T")
DEFAULT_LIMIT = 20
MAX_LIMIT = 100

LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size (1..100)")]
CursorQuery = Annotated[str | None, Query(max_length=2048, description="Opaque page cursor")]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None
    prev_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class SortKey:
    """One ordering column; the last key of a sort must be unique (the tie-breaker)."""

    column: Any
    attr: str
    descending: bool = False


@dataclass(frozen=True, slots=True)
class CursorState:
    values: list[Any]
    backwards: bool


def _bad_cursor(
    detail: str = "The cursor is malformed or does not belong to this query.",
) -> ProblemError:
    return problems.INVALID_CURSOR(detail)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"dt": value.isoformat()}
    if isinstance(value, Decimal):
        return {"dec": str(value)}
    if isinstance(value, uuid.UUID):
        return {"uuid": str(value)}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return {"str": str(value)}


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        ((tag, raw),) = value.items()
        if not isinstance(raw, str):
            raise _bad_cursor()
        try:
            if tag == "dt":
                return datetime.fromisoformat(raw)
            if tag == "dec":
                return Decimal(raw)
            if tag == "uuid":
                return uuid.UUID(raw)
            if tag == "str":
                return raw
        except ValueError as exc:
            raise _bad_cursor() from exc
        raise _bad_cursor()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise _bad_cursor()


class CursorCodec:
    """Signs and checks cursors; `scope` names the list so cursors do not cross lists."""

    def __init__(self, secret: str, scope: str) -> None:
        self._key = hashlib.sha256(f"{scope}:{secret}".encode()).digest()

    def _sign(self, payload: bytes) -> str:
        return _b64(hmac.new(self._key, payload, hashlib.sha256).digest()[:16])

    def encode(self, *, query_id: str, values: Sequence[Any], backwards: bool) -> str:
        body = {"q": query_id, "k": [_encode_value(v) for v in values], "b": backwards}
        payload = json.dumps(body, separators=(",", ":")).encode()
        return f"{_b64(payload)}.{self._sign(payload)}"

    def decode(self, cursor: str, *, query_id: str, key_count: int) -> CursorState:
        payload_b64, _, signature = cursor.partition(".")
        try:
            payload = _unb64(payload_b64)
        except (ValueError, TypeError) as exc:
            raise _bad_cursor() from exc
        if not signature or not hmac.compare_digest(signature, self._sign(payload)):
            raise _bad_cursor()
        try:
            body = json.loads(payload)
        except ValueError as exc:
            raise _bad_cursor() from exc
        if not isinstance(body, dict) or body.get("q") != query_id:
            raise _bad_cursor("The cursor belongs to a different sort or filter.")
        values = body.get("k")
        if not isinstance(values, list) or len(values) != key_count:
            raise _bad_cursor()
        return CursorState([_decode_value(v) for v in values], bool(body.get("b")))


def query_fingerprint(sort: str, filters: Mapping[str, Any]) -> str:
    """A short id of the sort and filters a cursor was made for."""
    canonical = json.dumps({"s": sort, "f": filters}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _after(keys: Sequence[SortKey], values: Sequence[Any], backwards: bool) -> ColumnElement[bool]:
    """Rows strictly after `values` in the sort order (before, when paging backwards)."""

    def forward(key: SortKey) -> bool:
        return key.descending == backwards  # ">" when True

    directions = {forward(k) for k in keys}
    if len(directions) == 1 and None not in values:
        # One direction: a row-value comparison the composite index can serve directly.
        left = tuple_(*(k.column for k in keys))
        right = tuple_(*values)
        return left > right if directions.pop() else left < right
    clauses: list[ColumnElement[bool]] = []
    for i, key in enumerate(keys):
        equal = [keys[j].column == values[j] for j in range(i)]
        step = key.column > values[i] if forward(key) else key.column < values[i]
        clauses.append(and_(*equal, step))
    return or_(false(), *clauses)


def keyset_select(
    stmt: Select[Any], keys: Sequence[SortKey], state: CursorState | None, limit: int
) -> Select[Any]:
    """Add the keyset condition, the ordering and limit+1 (to know if there is more)."""
    backwards = state.backwards if state else False
    if state is not None:
        stmt = stmt.where(_after(keys, state.values, backwards))
    order = []
    for key in keys:
        ascending = key.descending == backwards
        order.append(key.column.asc() if ascending else key.column.desc())
    return stmt.order_by(*order).limit(limit + 1)


@dataclass
class PageResult(Generic[T]):
    items: list[T]
    next_cursor: str | None
    prev_cursor: str | None


def build_page(
    rows: Sequence[T],
    *,
    keys: Sequence[SortKey],
    state: CursorState | None,
    limit: int,
    codec: CursorCodec,
    query_id: str,
) -> PageResult[T]:
    """Turn the limit+1 rows fetched by `keyset_select` into a page with both cursors."""
    backwards = state.backwards if state else False
    has_more = len(rows) > limit
    items = list(rows[:limit])
    if backwards:
        items.reverse()

    def cursor_for(row: T, back: bool) -> str:
        values = [getattr(row, k.attr) for k in keys]
        return codec.encode(query_id=query_id, values=values, backwards=back)

    next_cursor = prev_cursor = None
    if items:
        if has_more or backwards:
            next_cursor = cursor_for(items[-1], False)
        if (has_more and backwards) or (state is not None and not backwards):
            prev_cursor = cursor_for(items[0], True)
    return PageResult(items, next_cursor, prev_cursor)


def link_header(request: Request, next_cursor: str | None, prev_cursor: str | None) -> str | None:
    """RFC 8288 Link header with rel="next"/"prev" for the same query."""
    links = []
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    for rel, cursor in (("next", next_cursor), ("prev", prev_cursor)):
        if cursor:
            query = urlencode([*params, ("cursor", cursor)])
            links.append(f'<{request.url.path}?{query}>; rel="{rel}"')
    return ", ".join(links) or None
