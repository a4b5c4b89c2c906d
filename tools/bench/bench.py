"""`make bench`: start the real stack under gunicorn, load it from separate processes,
write docs/benchmarks.md (+ a PNG plot beside it).

    python -m tools.bench.bench --out docs/benchmarks.md            # full, ~6-8 minutes
    python -m tools.bench.bench --smoke --out /tmp/bench.md         # seconds

PostgreSQL/Redis: BENCH_DATABASE_URL / BENCH_REDIS_URL, else TEST_DATABASE_URL /
TEST_REDIS_URL, else embedded servers. The bench uses its own database (--db-name) and
flushes its own Redis db (index 15 unless the URL names one)."""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import redis

from tests.support.infra import start_infra, with_redis_db
from tools.bench import fixtures, generators, scenarios, targets
from tools.bench import report as report_writer
from tools.bench.results import Report
from tools.bench.stack import Stack, prepare_database, workdir


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    p.add_argument("--smoke", action="store_true", help="2 s per scenario, 2,000 products")
    p.add_argument("--duration", type=float, default=None, help="seconds per scenario")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--products", type=int, default=None)
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers, for every process")
    p.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    p.add_argument("--db-name", default="shopstack_bench")
    p.add_argument("--reuse", action="store_true", help="keep an already seeded database")
    p.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL"),
    )
    p.add_argument(
        "--redis-url", default=os.environ.get("BENCH_REDIS_URL") or os.environ.get("TEST_REDIS_URL")
    )
    p.add_argument(
        "--only",
        default="",
        help="comma-separated scenarios to run (ceilings,product_reads,lists,login_storm,"
        "overload,mix); targets whose rows are missing are reported as not measured",
    )
    args = p.parse_args(argv)
    args.duration = args.duration or (2.0 if args.smoke else 10.0)
    args.products = args.products or (2_000 if args.smoke else 1_000_000)
    return args


SCENARIOS = (
    scenarios.ceilings,
    scenarios.product_reads,
    scenarios.lists,
    scenarios.login_storm,
    scenarios.overload,
    scenarios.mix,
)


def _chosen(only: str) -> list[Callable[[scenarios.Ctx], None]]:
    names = {n.strip() for n in only.split(",") if n.strip()}
    unknown = names - {run.__name__ for run in SCENARIOS}
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    return [run for run in SCENARIOS if not names or run.__name__ in names]


def _redis_url(given: str | None, base: str) -> str:
    if given and given.rstrip("/").rsplit("/", 1)[-1].isdigit():
        return given
    return with_redis_db(given or base, 15)


def main(argv: list[str] | None = None) -> Report:
    args = _args(argv)
    began = time.monotonic()
    load_at_start = os.getloadavg()[0]
    work = workdir()
    admin_url, redis_base, servers = (
        start_infra("bench", work / "infra")
        if not (args.database_url and args.redis_url)
        else (args.database_url, args.redis_url, [])
    )
    admin_url = args.database_url or admin_url
    redis_url = _redis_url(args.redis_url, redis_base)
    generator = generators.choose(args.generator)
    database_url, seeded = prepare_database(
        admin_url, args.db_name, args.products, reuse=args.reuse
    )
    redis.Redis.from_url(redis_url).flushdb()
    report = Report(
        generator=generator,
        settings={
            "load generator": generator
            + ("" if generator == "wrk" else " (wrk not installed: built-in aiohttp generator)"),
            "machine": f"{os.cpu_count()} cores, {platform.python_implementation()} "
            f"{platform.python_version()}",
            "gunicorn": f"deploy/gunicorn.conf.py, {args.workers} uvicorn workers per process,"
            " MAX_REQUESTS=0",
            "per scenario": f"{args.duration:g} s, {args.connections} connections unless noted",
            "catalog": f"{args.products:,} products ({seeded})",
        },
    )
    stack = Stack(database_url, redis_url, args.workers, work)
    try:
        report.notes.append("admin account: " + stack.create_admin())
        stack.start(["raw", "fastapi", "auth", "catalog", "gateway"])
        stack.start_nginx("catalog")
        cold = 40_000 if not args.smoke else args.products
        ctx = scenarios.Ctx(
            stack=stack,
            report=report,
            generator=generator,
            duration=args.duration,
            connections=args.connections,
            database_url=database_url,
            ids=fixtures.product_ids(database_url, 100, cold),
            depth=max(100, min(100_000, args.products // 4)),
            sql_runs=20 if args.smoke else 300,
            mix_rates=[20, 40] if args.smoke else [100, 250, 500, 1000, 1500, 2000, 3000],
            pairs=1 if args.smoke else 3,
        )
        for run in _chosen(args.only):
            run(ctx)
        for name, why in stack.unavailable.items():
            report.notes.append(f"`{name}` not available: {why}")
    finally:
        stack.stop()
        for server in reversed(servers):
            server.stop()  # type: ignore[attr-defined]
    report.targets = targets.judge(report, args.products)
    report.settings["wall time"] = f"{time.monotonic() - began:.0f} s"
    # What else ran on the machine: the ceilings move with it, the ratios less so.
    report.settings["load average (1 min) at the start / the end"] = (
        f"{load_at_start:.1f} / {os.getloadavg()[0]:.1f}"
    )
    report_writer.write(report, args.out)
    print(f"wrote {args.out} ({len(report.rows)} rows, generator {generator})")
    return report


if __name__ == "__main__":
    main()
