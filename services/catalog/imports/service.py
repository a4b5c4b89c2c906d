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

from services.catalog.imports.schemas import ImportRowError
from services.catalog.models import CATEGORIES, OUTBOX, PRODUCTS
from services.catalog.products.reads import ProductReads
from services.catalog.products.schemas import ProductCreate
from services.catalog.queries import run
from services.common import problems
from services.common.clock import utcnow
from services.common.errors import ProblemError
from services.common.outbox import wake_relays_on_commit

CSV_COLUMNS = set(ProductCreate.model_fields)
_INTEGER = re.compile(r"[+-]?[0-9]+")
IMPORT_INVALID = problems.register("import-invalid", 422)
IMPORT_TOO_LARGE = problems.register("import-too-large", 413)
RowError = ImportRowError


def _error(row: int, field: str, message: str) -> RowError:
    return ImportRowError(row=row, field=field, message=message)


def invalid_file(
    errors: list[RowError], detail: str = "The file has invalid rows; nothing was imported."
) -> ProblemError:
    return IMPORT_INVALID(detail, extra={"errors": [e.model_dump() for e in errors]})


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
        raise IMPORT_TOO_LARGE(f"At most {max_rows} products per import.")
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
    taken = set(
        (await run(session, select(PRODUCTS.c.sku).where(PRODUCTS.c.sku.in_(skus)))).scalars()
    )
    wanted = {p.category_id for _, p in products if p.category_id is not None}
    known = (
        set(
            (
                await run(session, select(CATEGORIES.c.id).where(CATEGORIES.c.id.in_(wanted)))
            ).scalars()
        )
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
    session: AsyncSession, reads: ProductReads, rows: Sequence[Any], max_rows: int
) -> list[uuid.UUID]:
    products, errors = validate_rows(rows, max_rows)
    if products:
        errors += await check_against_db(session, products)
    if errors:
        raise invalid_file(sorted(errors, key=lambda e: (e.row, e.field)))
    now = utcnow()
    values = [
        {**p.model_dump(), "id": uuid.uuid4(), "created_at": now, "updated_at": now}
        for _, p in products
    ]
    # executemany: SQLAlchemy batches these into multi-row INSERTs (insertmanyvalues).
    try:
        await run(session, insert(PRODUCTS), values)
    except IntegrityError as exc:  # a concurrent import took one of the SKUs
        raise problems.CONFLICT("A SKU in the file was taken meanwhile.") from exc
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
    reads.invalidate_after_commit(session)
    return [v["id"] for v in values]
