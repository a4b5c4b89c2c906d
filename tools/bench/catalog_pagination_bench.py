"""Keyset vs OFFSET on a large catalog: a plain script, not collected by pytest.

    python tools/bench/catalog_pagination_bench.py [--products 1000000] [--pages 5000]
        [--admin-url postgresql://postgres@127.0.0.1:5432/postgres] [--keep]

Creates (or reuses with --reuse) the scratch database `catalog_bench`, migrates it,
seeds it with tools.devstack.seed, then times page 1 and page N (20 rows a page) of
two public sorts, once with the service's keyset condition and once with OFFSET at the
same depth, and prints a table (median of several runs, milliseconds).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from services.common.migrate import upgrade_all
from tests.support.infra import _dsn, recreate_database, with_database
from tools.devstack import seed

DB_NAME = "catalog_bench"
PAGE = 20
RUNS = 7
COLUMNS = (
    "id, sku, name, description, price, currency, stock, status, category_id,"
    " image_urls, created_at, updated_at, version"
)
SORTS = {
    "newest": ("created_at DESC, id DESC", "(created_at, id) < ($1, $2)", "created_at"),
    "price_asc": ("price ASC, id ASC", "(price, id) > ($1, $2)", "price"),
}


async def timed(conn: asyncpg.Connection, sql: str, *args: Any) -> tuple[float, int]:
    samples: list[float] = []
    rows: list[Any] = []
    for _ in range(RUNS):
        start = time.perf_counter()
        rows = await conn.fetch(sql, *args)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), len(rows)


async def bench(dsn: str, pages: int) -> list[tuple[str, str, float, int]]:
    conn = await asyncpg.connect(dsn)
    results: list[tuple[str, str, float, int]] = []
    try:
        for sort, (order, after, column) in SORTS.items():
            base = f"SELECT {COLUMNS} FROM catalog.products WHERE status = 'active'"
            depth = (pages - 1) * PAGE
            # the row just before page N, as a cursor would carry it (untimed)
            anchor = await conn.fetchrow(
                f"SELECT {column} AS k, id FROM catalog.products WHERE status = 'active'"
                f" ORDER BY {order} OFFSET {depth - 1} LIMIT 1"
            )
            first = f"{base} ORDER BY {order} LIMIT {PAGE + 1}"
            keyset = f"{base} AND {after} ORDER BY {order} LIMIT {PAGE + 1}"
            offset = f"{base} ORDER BY {order} OFFSET {depth} LIMIT {PAGE + 1}"
            ms, n = await timed(conn, first)
            results.append((sort, "page 1", ms, n))
            ms, n = await timed(conn, keyset, anchor["k"], anchor["id"])
            results.append((sort, f"page {pages} keyset", ms, n))
            ms, n = await timed(conn, offset)
            results.append((sort, f"page {pages} OFFSET {depth}", ms, n))
            plan = [r[0] for r in await conn.fetch(f"EXPLAIN {keyset}", anchor["k"], anchor["id"])]
            scan = next((line for line in plan if "Index" in line), plan[0])
            results.append((sort, "keyset plan: " + scan.strip().removeprefix("->  ")[:70], 0, 0))
    finally:
        await conn.close()
    return results


async def drop_database(admin_url: str) -> None:
    conn = await asyncpg.connect(_dsn(admin_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--pages", type=int, default=5000)
    parser.add_argument(
        "--admin-url",
        default=os.environ.get(
            "TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--reuse", action="store_true", help="use an already seeded database")
    parser.add_argument("--keep", action="store_true", help="do not drop the database after")
    args = parser.parse_args()
    url = with_database(args.admin_url, DB_NAME)
    if not args.reuse:
        asyncio.run(recreate_database(args.admin_url, DB_NAME))
        upgrade_all(url, names=["catalog"])
        seconds = asyncio.run(seed.seed(url, args.products, reset=True))
        print(f"seeded {args.products:,} products in {seconds:.1f}s")
    results = asyncio.run(bench(_dsn(url), args.pages))
    if not args.keep:
        asyncio.run(drop_database(args.admin_url))
    print(f"{'sort':<10} {'query':<28} {'median ms':>10} {'rows':>5}")
    for sort, query, ms, rows in results:
        if query.startswith("keyset plan"):
            print(f"{sort:<10} {query}")
        else:
            print(f"{sort:<10} {query:<28} {ms:>10.2f} {rows:>5}")


if __name__ == "__main__":
    main()
