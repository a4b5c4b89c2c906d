"""Page 1 vs a deep page straight in SQL, keyset vs OFFSET, for the catalog's default
sort (newest first, id as tie-breaker). The service has no OFFSET (by convention), so
OFFSET can only be measured here; keyset is measured here too so both compare alike."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from tests.support.infra import _dsn
from tools.bench.loadspec import Result
from tools.bench.pyload import percentile

PAGE = 20
COLUMNS = (
    "id, sku, name, description, price, currency, stock, status, category_id,"
    " image_urls, created_at, updated_at, version"
)
# Bound parameters for the status and the page size, as SQLAlchemy sends them from the
# service: a query with literals only is planned once at PREPARE, one with parameters is
# re-planned per execution while PostgreSQL's plan cache prefers custom plans (measured:
# ~0.1-0.2 ms, more than the 0.06 ms the index scan itself takes). Comparing a literal
# page 1 with a parameterised deep page measured planning, not depth.
BASE = f"SELECT {COLUMNS} FROM catalog.products WHERE status = $1"
ORDER = "ORDER BY created_at DESC, id DESC"
ACTIVE = "active"


async def _timed(conn: asyncpg.Connection, runs: int, sql: str, *args: Any) -> Result:
    samples: list[float] = []
    began = time.perf_counter()
    for _ in range(runs):
        start = time.perf_counter()
        rows = await conn.fetch(sql, *args)
        samples.append((time.perf_counter() - start) * 1000)
        if not rows:
            raise RuntimeError("a benchmark page came back empty")
    elapsed = time.perf_counter() - began
    ordered = sorted(samples)
    return Result(
        generator="asyncpg (1 connection, sequential)",
        requests=runs,
        duration=elapsed,
        p50=percentile(ordered, 50),
        p95=percentile(ordered, 95),
        p99=percentile(ordered, 99),
        errors=0,
        statuses={200: runs},
    )


async def _measure(database_url: str, depth: int, runs: int) -> dict[str, Result]:
    conn = await asyncpg.connect(_dsn(database_url))
    try:
        # The row just above the deep page, as a cursor would carry it (not timed).
        anchor = await conn.fetchrow(
            f"SELECT created_at, id FROM catalog.products WHERE status = 'active' {ORDER}"
            f" OFFSET {depth - 1} LIMIT 1"
        )
        if anchor is None:
            raise RuntimeError(f"fewer than {depth} active products")
        keyset = f"{BASE} AND (created_at, id) < ($3, $4) {ORDER} LIMIT $2"
        page = PAGE + 1
        return {
            "page1": await _timed(conn, runs, f"{BASE} {ORDER} LIMIT $2", ACTIVE, page),
            "keyset": await _timed(
                conn, runs, keyset, ACTIVE, page, anchor["created_at"], anchor["id"]
            ),
            "offset": await _timed(
                conn, runs, f"{BASE} {ORDER} OFFSET $3 LIMIT $2", ACTIVE, page, depth
            ),
        }
    finally:
        await conn.close()


def measure(database_url: str, depth: int, runs: int) -> dict[str, Result]:
    return asyncio.run(_measure(database_url, depth, runs))
