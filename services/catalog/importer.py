"""Bulk product import: parse a JSON array or a CSV file, validate every row, then insert
all rows in one transaction or none (422 with every row-level error)."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from services.catalog.models import Category, Outbox, Product
from services.catalog.schemas import ProductCreate
from services.catalog.sql import run
from services.common.errors import ProblemError
from services.common.outbox import utcnow, wake_relays_on_commit

P: Any = Product.__table__  # type: ignore[attr-defined]
C: Any = Category.__table__  # type: ignore[attr-defined]
OUTBOX: Any = Outbox.__table__  # type: ignore[attr-defined]
CSV_COLUMNS = set(ProductCreate.model_fields)
_INTEGER = re.compile(r"[+-]?[0-9]+")
RowError = dict[str, Any]


def _error(row: int, field: str, message: str) -> RowError:
    return {"row": row, "field": field, "message": message}


def invalid_file(
    errors: list[RowError], detail: str = "The file has invalid rows; nothing was imported."
) -> ProblemError:
    return ProblemError(422, detail, type_="import-invalid", extra={"errors": errors})


def rows_from_json(body: bytes) -> list[Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # [[[[... too deep
        raise invalid_file(
            [_error(0, "", "not valid JSON")], "The body is not valid JSON."
        ) from exc
    if not isinstance(data, list):
        raise invalid_file(
            [_error(0, "", "expected a JSON array of products")], "Expected a JSON array."
        )
    return data


def rows_from_csv(body: bytes) -> list[Any]:
    """CSV with a header row; image_urls are separated by spaces or '|'; blank = default."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise invalid_file([_error(0, "", "not UTF-8")], "The CSV is not UTF-8.") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    unknown = [name for name in header if name not in CSV_COLUMNS]
    if not header or unknown:
        raise invalid_file(
            [_error(0, name, "unknown column") for name in unknown]
            or [_error(0, "", "missing header row")],
            "Bad CSV header.",
        )
    rows: list[Any] = []
    try:
        for record in reader:
            if None in record:  # more cells than header columns
                rows.append({"__extra__": record.pop(None)})
                continue
            rows.append(_csv_record(record))
    except csv.Error as exc:
        raise invalid_file(
            [_error(reader.line_num, "", "malformed CSV")], "Malformed CSV."
        ) from exc
    return rows


def _csv_record(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in record.items():
        if value is None or value == "":
            continue  # blank cell: the field's default (or "required" if it has none)
        if name == "image_urls":
            out[name] = [u for u in value.replace("|", " ").split() if u]
        elif name == "stock" and _INTEGER.fullmatch(value.strip()):
            # A CSV cell is text; the field refuses strings (JSON bodies send a number).
            out[name] = int(value)
        else:
            out[name] = value
    return out


Numbered = list[tuple[int, ProductCreate]]


def validate_rows(rows: Sequence[Any], max_rows: int) -> tuple[Numbered, list[RowError]]:
    """Rows are numbered from 1 (the first product, after any CSV header)."""
    if not rows:
        raise invalid_file([_error(0, "", "no products in the file")], "The file is empty.")
    if len(rows) > max_rows:
        raise ProblemError(
            413, f"At most {max_rows} products per import.", type_="import-too-large"
        )
    valid: Numbered = []
    errors: list[RowError] = []
    for number, raw in enumerate(rows, start=1):
        if isinstance(raw, dict) and "__extra__" in raw:
            errors.append(_error(number, "", "more cells than header columns"))
            continue
        try:
            valid.append((number, ProductCreate.model_validate(raw)))
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(p) for p in err.get("loc", ()))
                errors.append(_error(number, field, err.get("msg", "invalid")))
    counts = Counter(p.sku for _, p in valid)
    for number, product in valid:
        if counts[product.sku] > 1:
            errors.append(_error(number, "sku", f"duplicate SKU {product.sku!r} in the file"))
    return valid, errors


async def check_against_db(session: AsyncSession, products: Numbered) -> list[RowError]:
    errors: list[RowError] = []
    skus = [p.sku for _, p in products]
    taken = set((await run(session, select(P.c.sku).where(P.c.sku.in_(skus)))).scalars())
    wanted = {p.category_id for _, p in products if p.category_id is not None}
    known = (
        set((await run(session, select(C.c.id).where(C.c.id.in_(wanted)))).scalars())
        if wanted
        else set()
    )
    for number, product in products:
        if product.sku in taken:
            errors.append(_error(number, "sku", f"SKU {product.sku!r} already exists"))
        if product.category_id is not None and product.category_id not in known:
            errors.append(_error(number, "category_id", "unknown category"))
    return errors


async def import_products(
    session: AsyncSession, rows: Sequence[Any], max_rows: int
) -> list[uuid.UUID]:
    products, errors = validate_rows(rows, max_rows)
    if products:
        errors += await check_against_db(session, products)
    if errors:
        raise invalid_file(sorted(errors, key=lambda e: (e["row"], e["field"])))
    now = utcnow()
    values = [
        {**p.model_dump(), "id": uuid.uuid4(), "created_at": now, "updated_at": now}
        for _, p in products
    ]
    # executemany: SQLAlchemy batches these into multi-row INSERTs (insertmanyvalues).
    try:
        await run(session, insert(P), values)
    except IntegrityError as exc:  # a concurrent import took one of the SKUs
        raise ProblemError(409, "A SKU in the file was taken meanwhile.", type_="conflict") from exc
    events = [
        {
            "id": uuid.uuid4(),
            "kind": "event",
            "topic": "product.created",
            "payload": {"product_id": str(v["id"])},
            "created_at": now,
        }
        for v in values
    ]
    await run(session, insert(OUTBOX), events)
    wake_relays_on_commit(session)  # Core inserts: add_event would have done this
    return [v["id"] for v in values]
