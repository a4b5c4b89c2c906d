"""GET /users (admins): keyset pages over 10,000+ users, every sort and filter, cursors."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from tests.integration.users.conftest import Person

URL = "/api/v1/users"
BULK = """
INSERT INTO users.profiles
    (id, email, display_name, role, status, created_at, updated_at, version)
SELECT gen_random_uuid(), CAST(:prefix AS text) || g || '@example.test', 'Name ' || (g % 97),
       CASE WHEN g % 10 = 0 THEN 'admin' ELSE 'user' END,
       CASE WHEN g % 7 = 0 THEN 'disabled' ELSE 'active' END,
       -- few distinct timestamps, so the id tie-breaker carries the order
       CAST(:base AS timestamptz) - (g % 50) * interval '1 second', now(), 1
FROM generate_series(CAST(:start AS int), CAST(:stop AS int)) AS g
"""


async def bulk_insert(app: FastAPI, prefix: str, start: int, stop: int, base: datetime) -> None:
    async with app.state.engine.begin() as conn:
        await conn.execute(
            text(BULK), {"prefix": prefix, "start": start, "stop": stop, "base": base}
        )


async def walk(client: httpx.AsyncClient, admin: Person, params: dict, between=None) -> list[dict]:
    seen: list[dict] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(URL, params=query, headers=admin.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        seen.extend(page["items"])
        if between:
            await between()
        cursor = page["next_cursor"]
        if not cursor:
            return seen
        assert 'rel="next"' in response.headers["link"]


@pytest.mark.slow
async def test_ten_thousand_users_each_once_while_users_are_added(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin = Person("admin")
    prefix = f"bulk{uuid.uuid4().hex[:6]}-"
    base = datetime.now(UTC) - timedelta(days=1)
    await bulk_insert(app, prefix, 1, 10_000, base)
    async with app.state.engine.connect() as conn:
        expected = {
            str(r[0])
            for r in await conn.execute(
                text("SELECT id FROM users.profiles WHERE email LIKE :p"), {"p": prefix + "%"}
            )
        }
    assert len(expected) == 10_000
    added = 10_000

    async def add_more() -> None:
        nonlocal added
        await bulk_insert(app, prefix, added + 1, added + 25, datetime.now(UTC))
        added += 25

    for sort in ("created", "-name"):
        seen = await walk(client, admin, {"q": prefix, "limit": 100, "sort": sort}, add_more)
        ids = [p["id"] for p in seen]
        assert len(ids) == len(set(ids)), f"{sort}: a user came twice"
        assert expected <= set(ids), f"{sort}: a user was skipped"

    # The prefix search is served by the text_pattern_ops index.
    async with app.state.engine.connect() as conn:
        await conn.execute(text("ANALYZE users.profiles"))
        plan = "\n".join(
            r[0]
            for r in await conn.execute(
                text(
                    f"EXPLAIN SELECT id FROM users.profiles WHERE lower(email) LIKE '{prefix}1234%'"
                )
            )
        )
    assert "ix_users_profiles_email_prefix" in plan


@pytest.fixture
async def small_set(app: FastAPI) -> tuple[str, list[dict]]:
    """24 users under one prefix with repeated names (mixed case) and timestamps."""
    prefix = f"flt{uuid.uuid4().hex[:6]}"
    base = datetime(2026, 3, 1, tzinfo=UTC)
    rows = []
    async with app.state.engine.begin() as conn:
        for i in range(24):
            row = {
                "id": uuid.uuid4(),
                "email": f"{prefix}-{i:02d}@example.test",
                "name": f"{'Ab' if i % 2 else 'ab'}{prefix}{i % 6}",
                "role": "admin" if i % 4 == 0 else "user",
                "status": "disabled" if i % 3 == 0 else "active",
                "created": base + timedelta(hours=i // 3),
            }
            rows.append(row)
            await conn.execute(
                text(
                    "INSERT INTO users.profiles (id, email, display_name, role, status, "
                    "created_at, updated_at, version) "
                    "VALUES (:id, :email, :name, :role, :status, :created, now(), 1)"
                ),
                row,
            )
    return prefix, rows


def order(rows: list[dict], sort: str) -> list[str]:
    if sort.endswith("created"):
        ranked = sorted(rows, key=lambda r: (r["created"], r["id"]))
    else:
        ranked = sorted(rows, key=lambda r: (r["name"].lower(), r["id"]))
    if sort.startswith("-"):
        ranked.reverse()
    return [str(r["id"]) for r in ranked]


@pytest.mark.parametrize("sort", ["created", "-created", "name", "-name"])
async def test_every_sort_in_order_and_backwards(
    client: httpx.AsyncClient, small_set: tuple[str, list[dict]], sort: str
) -> None:
    admin = Person("admin")
    prefix, rows = small_set
    seen = await walk(client, admin, {"q": prefix, "limit": 5, "sort": sort})
    assert [p["id"] for p in seen] == order(rows, sort)

    # Page forward twice, then follow prev_cursor back: the first page again.
    first = (
        await client.get(URL, params={"q": prefix, "limit": 5, "sort": sort}, headers=admin.headers)
    ).json()
    second = (
        await client.get(
            URL,
            params={"q": prefix, "limit": 5, "sort": sort, "cursor": first["next_cursor"]},
            headers=admin.headers,
        )
    ).json()
    back = (
        await client.get(
            URL,
            params={"q": prefix, "limit": 5, "sort": sort, "cursor": second["prev_cursor"]},
            headers=admin.headers,
        )
    ).json()
    assert [p["id"] for p in back["items"]] == [p["id"] for p in first["items"]]


@pytest.mark.parametrize(
    ("params", "predicate"),
    [
        ({"role": "admin"}, lambda r: r["role"] == "admin"),
        ({"status": "disabled"}, lambda r: r["status"] == "disabled"),
        (
            {"role": "user", "status": "active"},
            lambda r: r["role"] == "user" and r["status"] == "active",
        ),
        (
            {"created_after": "2026-03-01T03:00:00+00:00"},
            lambda r: r["created"] > datetime(2026, 3, 1, 3, tzinfo=UTC),
        ),
        (
            {"created_before": "2026-03-01T03:00:00Z"},
            lambda r: r["created"] < datetime(2026, 3, 1, 3, tzinfo=UTC),
        ),
    ],
)
async def test_filters(
    client: httpx.AsyncClient, small_set: tuple[str, list[dict]], params: dict, predicate
) -> None:
    admin = Person("admin")
    prefix, rows = small_set
    seen = await walk(client, admin, {"q": prefix, "limit": 7, **params})
    assert [p["id"] for p in seen] == order([r for r in rows if predicate(r)], "created")


async def test_q_is_a_case_insensitive_prefix_on_email_or_name(
    client: httpx.AsyncClient, small_set: tuple[str, list[dict]]
) -> None:
    admin = Person("admin")
    prefix, rows = small_set
    by_email = await walk(client, admin, {"q": f"{prefix.upper()}-1", "limit": 100})
    assert {p["email"] for p in by_email} == {f"{prefix}-{i}@example.test" for i in range(10, 20)}
    by_name = await walk(client, admin, {"q": f"AB{prefix}3", "limit": 100})
    assert {p["id"] for p in by_name} == {
        str(r["id"]) for r in rows if r["name"].endswith(f"{prefix}3")
    }
    # LIKE wildcards in q are literal, not "match everything".
    for wild in ("%", "_", f"{prefix}%"):
        page = (await client.get(URL, params={"q": wild}, headers=admin.headers)).json()
        assert page["items"] == []


async def test_cursor_tampering_and_reuse_with_other_filters_is_400(
    client: httpx.AsyncClient, small_set: tuple[str, list[dict]]
) -> None:
    admin = Person("admin")
    prefix, _ = small_set
    page = await client.get(URL, params={"q": prefix, "limit": 3}, headers=admin.headers)
    cursor = page.json()["next_cursor"]
    payload, _, signature = cursor.partition(".")
    tampered = [
        payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + "." + signature,
        payload + ".",
        "garbage",
        "@@@.###",
    ]
    for bad in tampered:
        response = await client.get(URL, params={"q": prefix, "cursor": bad}, headers=admin.headers)
        assert response.status_code == 400, bad
        assert response.headers["content-type"].startswith("application/problem+json")
    for other in ({"q": prefix, "sort": "name"}, {"q": prefix, "role": "admin"}, {}):
        response = await client.get(URL, params={**other, "cursor": cursor}, headers=admin.headers)
        assert response.status_code == 400


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"sort": "email"},
        {"role": "root"},
        {"status": "gone"},
        {"created_after": "yesterday"},
        {"created_after": "2026-03-01T00:00:00"},
        {"q": ""},
        {"q": "x" * 101},
    ],
)
async def test_bad_list_parameters_are_422(client: httpx.AsyncClient, params: dict) -> None:
    response = await client.get(URL, params=params, headers=Person("admin").headers)
    assert response.status_code == 422


async def test_directory_is_for_admins_only(client: httpx.AsyncClient) -> None:
    assert (await client.get(URL, headers=Person().headers)).status_code == 403
    assert (await client.get(URL)).status_code == 401


async def test_concurrent_walks_agree(
    client: httpx.AsyncClient, small_set: tuple[str, list[dict]]
) -> None:
    admin = Person("admin")
    prefix, _ = small_set
    walks = await asyncio.gather(
        *(walk(client, admin, {"q": prefix, "limit": 4, "sort": s}) for s in ("name", "-name"))
    )
    assert [p["id"] for p in walks[0]] == list(reversed([p["id"] for p in walks[1]]))
