"""Data the scenarios need, made through the services' own APIs where one exists:
product ids to read, accounts to log in with, an admin token, a deep list cursor."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import asyncpg
import httpx

from tests.support.infra import _dsn

CATALOG = "/api/v1/catalog"
AUTH = "/api/v1/auth"
USER_PASSWORD = "bench-User-pass-98765"


@dataclass
class ProductIds:
    hot: list[str]  # read again and again: served from the cache
    cold: list[str]  # never read before in this run: every read misses the cache


async def _product_ids(database_url: str, hot: int, cold: int) -> ProductIds:
    conn = await asyncpg.connect(_dsn(database_url))
    try:
        rows = await conn.fetch(
            "SELECT id FROM catalog.products WHERE status = 'active' ORDER BY random() LIMIT $1",
            hot + cold,
        )
    finally:
        await conn.close()
    ids = [str(r["id"]) for r in rows]
    return ProductIds(hot=ids[:hot], cold=ids[hot:])


def product_ids(database_url: str, hot: int, cold: int) -> ProductIds:
    return asyncio.run(_product_ids(database_url, hot, cold))


async def _count_skus(database_url: str, prefix: str) -> int:
    conn = await asyncpg.connect(_dsn(database_url))
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM catalog.products WHERE sku LIKE $1", prefix + "%"
        )
        return count
    finally:
        await conn.close()


def count_skus(database_url: str, prefix: str) -> int:
    """Rows a write scenario left behind (compared with the 201s it was given)."""
    return asyncio.run(_count_skus(database_url, prefix))


async def _count_accounts(database_url: str, prefix: str) -> int:
    conn = await asyncpg.connect(_dsn(database_url))
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM auth.accounts WHERE email LIKE $1", prefix + "%"
        )
        return count
    finally:
        await conn.close()


def count_accounts(database_url: str, prefix: str) -> int:
    """Accounts a registration scenario left behind (compared with the 202s it was given)."""
    return asyncio.run(_count_accounts(database_url, prefix))


def warm(base_url: str, paths: list[str]) -> int:
    """Read each path once so it is in the cache; returns how many answered 200."""
    with httpx.Client(base_url=base_url, timeout=10) as client:
        return sum(client.get(p).status_code == 200 for p in paths)


def login(auth_url: str, email: str, password: str) -> dict[str, str]:
    with httpx.Client(base_url=auth_url, timeout=30) as client:
        resp = client.post(f"{AUTH}/login", json={"email": email, "password": password})
        resp.raise_for_status()
        data: dict[str, str] = resp.json()
        return data


def register(auth_url: str, count: int) -> list[str]:
    """Fresh accounts (a run-unique domain part, so reruns never collide)."""
    run = uuid.uuid4().hex[:8]
    emails = [f"bench-{run}-{i}@example.com" for i in range(count)]
    with httpx.Client(base_url=auth_url, timeout=30) as client:
        for email in emails:
            body = {"email": email, "password": USER_PASSWORD}
            deadline = time.monotonic() + 60
            resp = client.post(f"{AUTH}/register", json=body)
            # Shed right after a login storm (its last hashes still finishing): back off
            # as Retry-After says, as docs/auth.md asks of every client.
            while resp.status_code == 503 and time.monotonic() < deadline:
                time.sleep(float(resp.headers.get("Retry-After", "1")))
                resp = client.post(f"{AUTH}/register", json=body)
            if resp.status_code >= 400:
                raise RuntimeError(f"register answered {resp.status_code}: {resp.text[:200]}")
    return emails


def deep_cursor(catalog_url: str, depth: int) -> tuple[str, int]:
    """Walk the public list (newest first) `depth` rows down, as a client would, and
    return the cursor found there and the depth actually reached."""
    reached, cursor = 0, None
    with httpx.Client(base_url=catalog_url, timeout=30) as client:
        while reached < depth:
            step = min(100, depth - reached)
            params: dict[str, str | int] = {"limit": step}
            if cursor:
                params["cursor"] = cursor
            resp = client.get(f"{CATALOG}/products", params=params)
            resp.raise_for_status()
            body = resp.json()
            reached += len(body["items"])
            cursor = body.get("next_cursor")
            if not cursor:
                break
    if not cursor:
        raise RuntimeError(f"the list ended after {reached} rows")
    return cursor, reached
