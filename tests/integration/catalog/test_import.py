"""Bulk import: JSON, CSV body and multipart file; all rows or none, row-level errors."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import func, select

from services.catalog.models import Outbox, Product
from tests.integration.catalog.support import (
    API,
    admin_headers,
    catalog_client,
    create_category,
    create_product,
    is_problem,
    product_body,
    sku,
)

pytestmark = pytest.mark.usefixtures("infra")
URL = f"{API}/products/import"


async def count_skus(app, skus: list[str]) -> int:  # type: ignore[no-untyped-def]
    async with app.state.session_factory() as session:
        stmt = select(func.count()).select_from(Product).where(Product.sku.in_(skus))
        return int((await session.exec(stmt)).one()[0])


async def test_json_import_inserts_every_row_with_events() -> None:
    async with catalog_client() as (app, client):
        category = await create_category(client)
        bodies = [product_body(category_id=category["id"]) for _ in range(25)]
        response = await client.post(URL, json=bodies, headers=admin_headers())
        assert response.status_code == 201, response.text
        data = response.json()
        assert data["imported"] == 25 and len(data["ids"]) == 25
        assert await count_skus(app, [b["sku"] for b in bodies]) == 25
        one = await client.get(f"{API}/products/{data['ids'][0]}")
        assert one.status_code == 200 and one.json()["sku"] == bodies[0]["sku"]
        async with app.state.session_factory() as session:
            topics = (
                await session.exec(
                    select(Outbox.topic).where(Outbox.payload["product_id"].astext.in_(data["ids"]))
                )
            ).all()
        assert [t[0] for t in topics] == ["product.created"] * 25


async def test_json_import_reports_every_bad_row_and_imports_nothing() -> None:
    async with catalog_client() as (app, client):
        existing = await create_product(client)
        dup = sku()
        bodies = [
            product_body(),  # 1 ok
            product_body(price="abc"),  # 2 bad price
            product_body(sku=dup),  # 3 dup in file
            product_body(sku=dup),  # 4 dup in file
            product_body(sku=existing["sku"]),  # 5 exists in DB
            product_body(category_id=str(uuid.uuid4())),  # 6 unknown category
            {**product_body(), "surprise": 1},  # 7 unknown field
            "not an object",  # 8
        ]
        response = await client.post(URL, json=bodies, headers=admin_headers())
        assert is_problem(response, 422)
        errors = response.json()["errors"]
        by_row = {(e["row"], e["field"]) for e in errors}
        assert (2, "price") in by_row
        assert (3, "sku") in by_row and (4, "sku") in by_row
        assert (5, "sku") in by_row and (6, "category_id") in by_row
        assert (7, "surprise") in by_row and any(e["row"] == 8 for e in errors)
        assert 1 not in {e["row"] for e in errors}
        assert all(set(e) == {"row", "field", "message"} for e in errors)
        assert await count_skus(app, [bodies[0]["sku"], dup]) == 0


CSV_HEADER = "sku,name,description,price,currency,stock,status,category_id,image_urls\n"


async def test_csv_body_and_multipart_file() -> None:
    async with catalog_client() as (app, client):
        a, b, c = sku(), sku(), sku()
        csv_text = (
            CSV_HEADER + f'{a},"Kettle, steel","Says ""hi""",12.50,EUR,3,active,,'
            "https://x.example.com/1.jpg|https://x.example.com/2.jpg\n"
            + f"{b},Mug,,2.00,USD,,draft,,\n"
        )
        response = await client.post(
            URL, content=csv_text.encode(), headers={**admin_headers(), "Content-Type": "text/csv"}
        )
        assert response.status_code == 201, response.text
        product = (await client.get(f"{API}/products/by-sku/{a}")).json()
        assert product["name"] == "Kettle, steel" and product["description"] == 'Says "hi"'
        assert product["price"] == "12.50" and len(product["image_urls"]) == 2
        files = {
            "file": (
                "products.csv",
                (CSV_HEADER + f"{c},Bowl,,3.10,EUR,1,active,,\n").encode(),
                "text/csv",
            )
        }
        multipart = await client.post(URL, files=files, headers=admin_headers())
        assert multipart.status_code == 201, multipart.text
        assert await count_skus(app, [a, b, c]) == 3
        as_json = {"file": ("p.json", json.dumps([product_body()]).encode(), "application/json")}
        assert (await client.post(URL, files=as_json, headers=admin_headers())).status_code == 201


async def test_csv_errors_are_row_level_and_atomic() -> None:
    async with catalog_client() as (app, client):
        good, bad = sku(), sku()
        csv_text = (
            CSV_HEADER
            + f"{good},Fine,,1.00,EUR,1,active,,\n"
            + f"{bad},Broken,,-5,euro,-1,active,,ftp://x\n"
            + f"{good},Again,,1.00,EUR,1,active,,\n"
        )
        response = await client.post(
            URL, content=csv_text, headers={**admin_headers(), "Content-Type": "text/csv"}
        )
        assert is_problem(response, 422)
        fields = {(e["row"], e["field"].split(".")[0]) for e in response.json()["errors"]}
        assert {
            (2, "price"),
            (2, "currency"),
            (2, "stock"),
            (2, "image_urls"),
            (1, "sku"),
            (3, "sku"),
        } <= fields
        assert await count_skus(app, [good, bad]) == 0
        header = await client.post(
            URL,
            content="sku,name,price,drop_table\nx,y,1,z\n",
            headers={**admin_headers(), "Content-Type": "text/csv"},
        )
        assert is_problem(header, 422)
        assert header.json()["errors"][0] == {
            "row": 0,
            "field": "drop_table",
            "message": "unknown column",
        }
        ragged = await client.post(
            URL,
            content=CSV_HEADER + "a,b,c,1,EUR,1,active,,,extra\n",
            headers={**admin_headers(), "Content-Type": "text/csv"},
        )
        assert is_problem(ragged, 422)


async def test_bad_bodies_are_4xx() -> None:
    async with catalog_client(import_max_rows=5, import_max_bytes=4096) as (_, client):
        cases = [
            ({"Content-Type": "application/json"}, b"{not json", 422),
            ({"Content-Type": "application/json"}, b'{"sku": "x"}', 422),
            ({"Content-Type": "application/json"}, b"[]", 422),
            ({"Content-Type": "application/xml"}, b"<a/>", 415),
            ({"Content-Type": "text/csv"}, b"\xff\xfe\x00bad", 422),
            (
                {"Content-Type": "application/json"},
                json.dumps([product_body() for _ in range(6)]).encode(),
                413,
            ),
            ({"Content-Type": "text/csv"}, b"x" * 5000, 413),
            ({"Content-Type": "multipart/form-data; boundary=zzz"}, b"--zzz\r\nbroken", 422),
        ]
        for headers, body, status in cases:
            response = await client.post(URL, content=body, headers={**admin_headers(), **headers})
            assert is_problem(response, status), (headers, body[:20], response.text)
        no_file = await client.post(
            URL, data={"other": "x"}, files={"x": ("a", b"b")}, headers=admin_headers()
        )
        assert is_problem(no_file, 422)


async def test_import_is_idempotent_with_a_key() -> None:
    async with catalog_client() as (app, client):
        bodies = [product_body() for _ in range(3)]
        headers = {**admin_headers("importer"), "Idempotency-Key": uuid.uuid4().hex}
        first = await client.post(URL, json=bodies, headers=headers)
        again = await client.post(URL, json=bodies, headers=headers)
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
        other = await client.post(URL, json=bodies[:1], headers=headers)
        assert is_problem(other, 422)
        assert await count_skus(app, [b["sku"] for b in bodies]) == 3
