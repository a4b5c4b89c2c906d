"""Every scenario of the bench, each measured next to its baseline in the same run.
A scenario whose service is missing (or fails) becomes a row with the reason."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from tests.load import fixtures, generators, sqlpages
from tests.load.baselines import PATH as CONSTANT
from tests.load.fixtures import AUTH, CATALOG, USER_PASSWORD, ProductIds
from tests.load.loadspec import Load, Req, Result
from tests.load.results import Report, Row
from tests.load.stack import ADMIN_EMAIL, ADMIN_PASSWORD, Stack

RAW = "raw ASGI constant"
BARE = "bare FastAPI constant"
CACHED = "product read, cached, direct"
CACHED_GW = "product read, cached, via gateway"
LAT_BARE = "bare FastAPI, 1 connection"
LAT_CACHED = "product read, cached, direct, 1 connection"
LAT_GW = "product read, cached, via gateway, 1 connection"
UNCACHED = "product read, uncached, direct"
UNCACHED_GW = "product read, uncached, via gateway"
LIST1 = "list page 1, HTTP (cached)"
LISTDEEP = "list deep page, keyset cursor, HTTP (cached)"
SQL1 = "list page 1, SQL"
SQLKEY = "list deep page, keyset, SQL"
SQLOFF = "list deep page, OFFSET, SQL"
IDLE = "cached read, idle (4 connections)"
STORM_READ = "cached read during login storm (4 connections)"
STORM = "login storm, argon2id"
READERS = 4  # connections of the cheap reads measured beside the storm
STORM_CONNECTIONS = 16
# The mix's budget: beyond either, the step is past the knee.
BUDGET_P99_MS = 250.0
BUDGET_FAILED = 0.001
JSON = {"Content-Type": "application/json"}


@dataclass
class Ctx:
    stack: Stack
    report: Report
    generator: str
    duration: float
    connections: int
    database_url: str
    ids: ProductIds
    depth: int
    sql_runs: int
    mix_steps: list[int]
    storm_pairs: int = 3


def _missing(ctx: Ctx, *names: str) -> str | None:
    for name in names:
        if ctx.stack.url(name) is None:
            why = ctx.stack.unavailable.get(name, "not started")
            return f"not available: {name} ({why})"
    return None


def _run(ctx: Ctx, base: str, reqs: list[Req], connections: int | None = None) -> Result:
    load = Load(base, reqs, connections or ctx.connections, ctx.duration)
    return generators.run(ctx.generator, load)


def measure(
    ctx: Ctx,
    group: str,
    name: str,
    needs: tuple[str, ...],
    make: Callable[[], tuple[str, list[Req]]],
    *,
    baseline: str | None = None,
    connections: int | None = None,
    note: str = "",
) -> Row:
    row = Row(group, name, baseline=baseline, note=note)
    row.reason = _missing(ctx, *needs)
    if row.reason is None:
        try:
            base, reqs = make()
            row.result = _run(ctx, base, reqs, connections)
        except Exception as exc:  # a broken service is reported, not fatal to the run
            row.reason = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
    return ctx.report.add(row)


def _url(ctx: Ctx, name: str) -> str:
    url = ctx.stack.url(name)
    assert url is not None
    return url


def _reads(ids: list[str]) -> list[Req]:
    return [Req("GET", f"{CATALOG}/products/{i}") for i in ids]


def ceilings(ctx: Ctx) -> None:
    constant = [Req("GET", CONSTANT)]
    measure(ctx, "ceiling", RAW, ("raw",), lambda: (_url(ctx, "raw"), constant))
    measure(
        ctx, "ceiling", BARE, ("fastapi",), lambda: (_url(ctx, "fastapi"), constant), baseline=RAW
    )


def product_reads(ctx: Ctx) -> None:
    hot = _reads(ctx.ids.hot)
    if ctx.stack.url("catalog"):
        fixtures.warm(_url(ctx, "catalog"), [r.path for r in hot])
    measure(
        ctx,
        "product read",
        CACHED,
        ("catalog",),
        lambda: (_url(ctx, "catalog"), hot),
        baseline=BARE,
    )
    measure(
        ctx,
        "product read",
        CACHED_GW,
        ("catalog", "gateway"),
        lambda: (_url(ctx, "gateway"), hot),
        baseline=CACHED,
    )
    # Unloaded latency: one connection, so p50 is service time, not queueing.
    constant = [Req("GET", CONSTANT)]
    measure(
        ctx,
        "latency",
        LAT_BARE,
        ("fastapi",),
        lambda: (_url(ctx, "fastapi"), constant),
        connections=1,
    )
    measure(
        ctx,
        "latency",
        LAT_CACHED,
        ("catalog",),
        lambda: (_url(ctx, "catalog"), hot),
        connections=1,
        baseline=LAT_BARE,
    )
    measure(
        ctx,
        "latency",
        LAT_GW,
        ("catalog", "gateway"),
        lambda: (_url(ctx, "gateway"), hot),
        connections=1,
        baseline=LAT_CACHED,
    )
    half = len(ctx.ids.cold) // 2
    for name, pool, needs, base, baseline in (
        (UNCACHED, ctx.ids.cold[:half], ("catalog",), "catalog", CACHED),
        (UNCACHED_GW, ctx.ids.cold[half:], ("catalog", "gateway"), "gateway", UNCACHED),
    ):
        row = measure(
            ctx,
            "product read",
            name,
            needs,
            lambda base=base, pool=pool: (_url(ctx, base), _reads(pool)),  # type: ignore[misc]
            baseline=baseline,
        )
        if row.result and row.result.requests > len(pool):
            row.note = (
                f"only {len(pool):,} unread ids for {row.result.requests:,} reads:"
                " the rest were cache hits"
            )
        elif row.result:
            row.note = f"{len(pool):,} ids never read before: every read missed the cache"


def lists(ctx: Ctx) -> None:
    page1 = [Req("GET", f"{CATALOG}/products?limit=20")]
    measure(ctx, "list", LIST1, ("catalog",), lambda: (_url(ctx, "catalog"), page1))

    def deep() -> tuple[str, list[Req]]:
        cursor, reached = fixtures.deep_cursor(_url(ctx, "catalog"), ctx.depth)
        ctx.report.notes.append(f"Deep page: the cursor {reached:,} rows down (newest first).")
        return _url(ctx, "catalog"), [Req("GET", f"{CATALOG}/products?limit=20&cursor={cursor}")]

    measure(ctx, "list", LISTDEEP, ("catalog",), deep, baseline=LIST1)
    try:
        sql = sqlpages.measure(ctx.database_url, ctx.depth, ctx.sql_runs)
        note = f"{ctx.depth:,} rows down"
        ctx.report.add(Row("list", SQL1, sql["page1"]))
        ctx.report.add(Row("list", SQLKEY, sql["keyset"], baseline=SQL1, note=note))
        ctx.report.add(Row("list", SQLOFF, sql["offset"], baseline=SQL1, note=note))
    except Exception as exc:
        for name in (SQL1, SQLKEY, SQLOFF):
            ctx.report.add(Row("list", name, reason=f"failed: {exc}"))


@dataclass
class StormPair:
    """One idle read measurement and the storm right after it."""

    idle: Result
    reads: Result  # the same reads during the storm
    storm: Result  # the logins

    @property
    def ratio(self) -> float:
        return self.reads.p99 / self.idle.p99 if self.idle.p99 else 0.0


def median_pair(pairs: list[StormPair]) -> StormPair:
    """The pair with the median p99 ratio (the upper one of an even count)."""
    return sorted(pairs, key=lambda p: p.ratio)[len(pairs) // 2]


def login_storm(ctx: Ctx) -> None:
    """Idle reads, then the same reads beside a storm, `storm_pairs` times in a row:
    one pair's idle p99 moved 2x between quiet runs on this machine, so the published
    pair is the median one and the note lists every pair's ratio."""
    hot = _reads(ctx.ids.hot)
    reason = _missing(ctx, "catalog", "auth")
    if reason:
        measure(
            ctx,
            "login storm",
            IDLE,
            ("catalog",),
            lambda: (_url(ctx, "catalog"), hot),
            connections=READERS,
        )
        ctx.report.add(Row("login storm", STORM_READ, reason=reason, baseline=IDLE))
        ctx.report.add(Row("login storm", STORM, reason=reason))
        return
    try:
        emails = fixtures.register(_url(ctx, "auth"), 8)
        logins = [
            Req("POST", f"{AUTH}/login", JSON, json.dumps({"email": e, "password": USER_PASSWORD}))
            for e in emails
        ]
        pairs: list[StormPair] = []
        for _ in range(ctx.storm_pairs):
            idle = _run(ctx, _url(ctx, "catalog"), hot, READERS)
            storm = generators.start(
                ctx.generator, Load(_url(ctx, "auth"), logins, STORM_CONNECTIONS, ctx.duration)
            )
            reads = _run(ctx, _url(ctx, "catalog"), hot, READERS)
            pairs.append(StormPair(idle, reads, storm.result()))
        shown = median_pair(pairs)
        ratios = ", ".join(f"{p.ratio:.1f}x" for p in pairs)
        ctx.report.add(Row("login storm", IDLE, shown.idle))
        ctx.report.add(
            Row(
                "login storm",
                STORM_READ,
                shown.reads,
                baseline=IDLE,
                note=f"median of {len(pairs)} idle/storm pair(s); p99 ratios in order: {ratios}",
            )
        )
        ctx.report.add(
            Row(
                "login storm",
                STORM,
                shown.storm,
                note=f"{STORM_CONNECTIONS} connections, each login one argon2id verify",
            )
        )
    except Exception as exc:
        for name in (IDLE, STORM_READ, STORM):
            ctx.report.add(Row("login storm", name, reason=f"failed: {exc}"))


def _mix(ctx: Ctx, token: str, emails: list[str], sku_prefix: str) -> tuple[list[Req], list[Req]]:
    """100 requests: browse 80, product detail 15, login/refresh 4, writes 1.
    Returned as (catalog part, auth part) so they can go to one entry or two."""
    browse = [
        f"{CATALOG}/products?limit=20&sort={s}"
        for s in ("newest", "price_asc", "price_desc", "name", "oldest")
    ]
    browse += [f"{CATALOG}/products?limit=20&min_price={p}" for p in (5, 10, 20, 50, 100)]
    catalog: list[Req] = []
    for i in range(95):
        if i % 19 < 16:  # 80 of the 95
            catalog.append(Req("GET", browse[i % len(browse)]))
        else:  # 15 of the 95
            catalog.append(Req("GET", f"{CATALOG}/products/{ctx.ids.hot[i % len(ctx.ids.hot)]}"))
    write = {
        "sku": f"{sku_prefix}{{{{n}}}}",
        "name": "Bench item",
        "price": "9.99",
        "currency": "EUR",
        "stock": 1,
    }
    catalog.insert(
        50,
        Req(
            "POST",
            f"{CATALOG}/products",
            {**JSON, "Authorization": f"Bearer {token}"},
            json.dumps(write),
            unique=True,
        ),
    )
    auth = [
        Req(
            "POST",
            f"{AUTH}/login",
            JSON,
            json.dumps({"email": emails[i % len(emails)], "password": USER_PASSWORD}),
        )
        for i in range(2)
    ]
    auth += [
        Req("POST", f"{AUTH}/refresh", JSON, None, refresh=True, fallback=0),
        Req("POST", f"{AUTH}/refresh", JSON, None, refresh=True, fallback=1),
    ]
    return catalog, auth


def _combine(parts: list[Result]) -> Result:
    """Two concurrent loads as one: counts add up; p50/p95 are the larger part's,
    p99 the worse of the two (an upper bound)."""
    main = max(parts, key=lambda r: r.requests)
    statuses: dict[int, int] = {}
    for part in parts:
        for code, n in part.statuses.items():
            statuses[code] = statuses.get(code, 0) + n
    return Result(
        main.generator,
        sum(p.requests for p in parts),
        max(p.duration for p in parts),
        main.p50,
        main.p95,
        max(p.p99 for p in parts),
        sum(p.errors for p in parts),
        statuses,
    )


def mix(ctx: Ctx) -> None:
    knee = ctx.report.knee
    reason = _missing(ctx, "catalog", "auth")
    if reason:
        knee.mode = reason
        return
    gateway = ctx.stack.url("gateway")
    knee.mode = (
        "one load through the gateway"
        if gateway
        else "no gateway yet: catalog and auth loaded directly by two generators at once"
    )
    try:
        emails = fixtures.register(_url(ctx, "auth"), 4)
    except Exception as exc:
        knee.mode = f"failed: {exc}"
        return
    run = uuid.uuid4().hex[:6]
    for c in ctx.mix_steps:
        try:
            token = fixtures.login(_url(ctx, "auth"), ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
        except Exception as exc:
            knee.mode = f"failed: the admin could not log in: {exc}"
            return
        prefix = f"BENCH-{run}-c{c}-"
        catalog, auth = _mix(ctx, token, emails, prefix)
        if gateway:
            # the auth part spread evenly through the catalog part: 4 in every 100
            reqs = list(catalog)
            for i, req in enumerate(auth):
                reqs.insert(12 + i * 25, req)
            result = _run(ctx, gateway, _fix_fallbacks(reqs), c)
        else:
            c_auth = max(1, round(c * 0.04))
            first = generators.start(
                ctx.generator, Load(_url(ctx, "auth"), auth, c_auth, ctx.duration)
            )
            second = _run(ctx, _url(ctx, "catalog"), catalog, max(1, c - c_auth))
            result = _combine([second, first.result()])
        stored = fixtures.count_skus(ctx.database_url, prefix)
        knee.steps.append((c, result, result.count(201), stored))
        broken = result.p99 > BUDGET_P99_MS or result.failed > BUDGET_FAILED * max(
            1, result.requests
        )
        if broken:
            break
        knee.knee = c


def _fix_fallbacks(reqs: list[Req]) -> list[Req]:
    """After merging, a refresh's fallback must point at a login of the merged list."""
    logins = [i for i, r in enumerate(reqs) if r.path.endswith("/login")]
    out = []
    for r in reqs:
        if r.refresh:
            r = Req(
                r.method,
                r.path,
                r.headers,
                r.body,
                refresh=True,
                fallback=logins[r.fallback % len(logins)],
            )
        out.append(r)
    return out
