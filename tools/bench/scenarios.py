"""Every scenario of the bench, each measured next to its baseline in the same run.
A scenario whose service is missing (or fails) becomes a row with the reason."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from tools.bench import fixtures, generators, k6, sqlpages
from tools.bench.baselines import PATH as CONSTANT
from tools.bench.fixtures import AUTH, CATALOG, USER_PASSWORD, ProductIds
from tools.bench.k6 import Flow, K6Req
from tools.bench.loadspec import Load, Req, Result
from tools.bench.results import Report, Row
from tools.bench.stack import ADMIN_EMAIL, ADMIN_PASSWORD, Stack

RAW = "raw ASGI constant"
BARE = "bare FastAPI constant"
CACHED = "product read, cached, direct"
CACHED_GW = "product read, cached, via gateway"
CACHED_NGINX = "product read, cached, via nginx"
LAT_BARE = "bare FastAPI, 1 connection"
LAT_CACHED = "product read, cached, direct, 1 connection"
LAT_GW = "product read, cached, via gateway, 1 connection"
LAT_NGINX = "product read, cached, via nginx, 1 connection"
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
    mix_rates: list[int]
    pairs: int = 3  # alternated measurements behind a noisy ratio; the median is published


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


@dataclass
class ProxyPair:
    """The gateway's cached read and nginx's, measured one right after the other."""

    gateway: Result
    nginx: Result

    @property
    def ratio(self) -> float:
        return self.gateway.rps / self.nginx.rps if self.nginx.rps else 0.0


def _gateway_and_nginx(ctx: Ctx, hot: list[Req]) -> None:
    """The gateway's row and nginx's (the proxy a user would pick instead: plain,
    keepalive, no checks), alternated `pairs` times: what the neighbours take drifts
    over a run by more than the goal's margin, so the published pair is the median."""
    if _missing(ctx, "catalog", "gateway", "nginx") is not None:
        # Each row measured once where it can be; the other says why not.
        for name, base in ((CACHED_GW, "gateway"), (CACHED_NGINX, "nginx")):
            measure(
                ctx,
                "product read",
                name,
                ("catalog", base),
                lambda base=base: (_url(ctx, base), hot),  # type: ignore[misc]
                baseline=CACHED,
            )
        return
    try:
        pairs = [
            ProxyPair(_run(ctx, _url(ctx, "gateway"), hot), _run(ctx, _url(ctx, "nginx"), hot))
            for _ in range(ctx.pairs)
        ]
    except Exception as exc:  # a broken service is reported, not fatal to the run
        reason = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
        for name in (CACHED_GW, CACHED_NGINX):
            ctx.report.add(Row("product read", name, reason=reason, baseline=CACHED))
        return
    shown = median_pair(pairs)
    ratios = ", ".join(f"{p.ratio:.2f}" for p in pairs)
    ctx.report.add(Row("product read", CACHED_GW, shown.gateway, baseline=CACHED))
    ctx.report.add(
        Row(
            "product read",
            CACHED_NGINX,
            shown.nginx,
            baseline=CACHED,
            note=f"median of {len(pairs)} gateway/nginx pair(s); ratios in order: {ratios}",
        )
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
    _gateway_and_nginx(ctx, hot)
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
    measure(
        ctx,
        "latency",
        LAT_NGINX,
        ("catalog", "nginx"),
        lambda: (_url(ctx, "nginx"), hot),
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


class _Paired(Protocol):
    @property
    def ratio(self) -> float: ...


P = TypeVar("P", bound=_Paired)


def median_pair(pairs: list[P]) -> P:
    """The pair with the median ratio (the upper one of an even count)."""
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
        for _ in range(ctx.pairs):
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


# Per 200 requests: browse 160, product detail 35, login 1, refresh 2, admin write 2.
# Login 0.5 %: an access token lives 15 minutes and a refresh token 30 days, so a shopper
# logs in about once per device per month and otherwise refreshes (1 %, one per ~15 min
# of activity); a shopping session is ~100-200 API calls (list pages, details, images'
# metadata), and most sessions are anonymous or already signed in.
MIX_SIZE = 200
DETAIL_SLOTS = {2, 8, 13, 19, 24, 31, 37}  # 7 of every 40: 35 of 200
MIX_SHARES = "browse 80 %, product detail 17.5 %, refresh 1 %, admin writes 1 %, login 0.5 %"


def _mix(ctx: Ctx, token: str, emails: list[str], sku_prefix: str) -> list[K6Req]:
    browse = [
        f"{CATALOG}/products?limit=20&sort={s}"
        for s in ("newest", "price_asc", "price_desc", "name", "oldest")
    ]
    browse += [f"{CATALOG}/products?limit=20&min_price={p}" for p in (5, 10, 20, 50, 100)]
    write = {
        "sku": f"{sku_prefix}{{{{n}}}}",
        "name": "Bench item",
        "price": "9.99",
        "currency": "EUR",
        "stock": 1,
    }
    login = K6Req(
        "login",
        "POST",
        f"{AUTH}/login",
        (200,),
        JSON,
        json.dumps({"email": emails[0], "password": USER_PASSWORD}),
    )
    reqs: list[K6Req] = [login]  # index 0: the refreshes' fallback
    for i in range(1, MIX_SIZE):
        if i in (67, 134):
            reqs.append(K6Req("refresh", "POST", f"{AUTH}/refresh", (200,), JSON, refresh=True))
        elif i in (50, 150):
            reqs.append(
                K6Req(
                    "write",
                    "POST",
                    f"{CATALOG}/products",
                    (201,),
                    {**JSON, "Authorization": f"Bearer {token}"},
                    json.dumps(write),
                    unique=True,
                )
            )
        elif i % 40 in DETAIL_SLOTS:
            hot = ctx.ids.hot[i % len(ctx.ids.hot)]
            reqs.append(K6Req("detail", "GET", f"{CATALOG}/products/{hot}"))
        else:
            reqs.append(K6Req("browse", "GET", browse[i % len(browse)]))
    return reqs


def _within_budget(result: Result, dropped: int) -> bool:
    allowed = BUDGET_FAILED * max(1, result.requests)
    return (
        result.p99 <= BUDGET_P99_MS
        and result.failed + result.count(503) <= allowed
        and dropped <= allowed
    )


def mix(ctx: Ctx) -> None:
    """The realistic mix through the gateway at rising arrival rates (open loop, k6):
    the knee is the last rate served within budget."""
    knee = ctx.report.knee
    reason = _missing(ctx, "catalog", "auth", "gateway")
    if reason or k6.binary() is None:
        knee.mode = reason or "not available: k6 not installed (make bench installs it)"
        return
    knee.mode = f"open loop (k6 constant arrival rate) through the gateway; {MIX_SHARES}"
    try:
        emails = fixtures.register(_url(ctx, "auth"), 4)
    except Exception as exc:
        knee.mode = f"failed: {exc}"
        return
    run = uuid.uuid4().hex[:6]
    for rate in ctx.mix_rates:
        try:
            token = fixtures.login(_url(ctx, "auth"), ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
            prefix = f"BENCH-{run}-r{rate}-"
            flows = {"mix": Flow(rate, _mix(ctx, token, emails, prefix), *_vus(rate))}
            opened = k6.run(_url(ctx, "gateway"), flows, ctx.duration)
        except Exception as exc:
            knee.mode += f"; failed at {rate} req/s: {type(exc).__name__}: {str(exc)[:200]}"
            return
        result = k6.as_result(opened)
        stored = fixtures.count_skus(ctx.database_url, prefix)
        knee.steps.append((rate, result, opened.kind("write").ok, stored))
        knee.dropped[rate] = opened.dropped
        if not _within_budget(result, opened.dropped):
            break
        knee.knee = rate


def _vus(rate: float) -> tuple[int, int]:
    """Preallocated and most VUs for a rate: enough that an iteration waits for a VU
    only when answers take over a second on average."""
    return max(20, int(rate // 4)), max(100, int(rate * 1.5))


LOGIN_CAP = "login capacity: logins served, closed loop (16 connections)"
READ_CAP = "read capacity: cached read via gateway, closed loop (k6)"
OVERLOAD_CONNECTIONS = 16


def overload(ctx: Ctx) -> None:
    """Open-loop overload: measure the hash pool's capacity and the reads' capacity,
    then send logins at twice the one and reads at half the other (plus a few
    registrations, the writes that must not be lost), after the same reads alone."""
    ov = ctx.report.overload
    reason = _missing(ctx, "catalog", "auth", "gateway")
    if reason or k6.binary() is None:
        ov.mode = reason or "not available: k6 not installed (make bench installs it)"
        for name in (LOGIN_CAP, READ_CAP):
            ctx.report.add(Row("overload", name, reason=ov.mode))
        return
    gateway = _url(ctx, "gateway")
    try:
        emails = fixtures.register(_url(ctx, "auth"), 8)
        logins = [
            Req("POST", f"{AUTH}/login", JSON, json.dumps({"email": e, "password": USER_PASSWORD}))
            for e in emails
        ]
        cap = ctx.report.add(
            Row(
                "overload",
                LOGIN_CAP,
                _run(ctx, gateway, logins, OVERLOAD_CONNECTIONS),
                note="through the gateway; the 503s are admission refusals",
            )
        ).result
        hot = _reads(ctx.ids.hot)
        fixtures.warm(gateway, [r.path for r in hot])
        read_reqs = [K6Req("read", "GET", r.path) for r in hot]
        # The reads' capacity as k6 itself drives it (closed loop): k6 offers the reads,
        # and on a machine it shares with the stack it needs several times wrk's CPU per
        # request, so half of wrk's figure is more than k6 can send on time here.
        closed = Flow(0, read_reqs, vus=ctx.connections, closed=True)
        reads_cap = ctx.report.add(
            Row(
                "overload",
                READ_CAP,
                k6.as_result(k6.run(gateway, {"reads": closed}, ctx.duration)),
                note=f"k6, {ctx.connections} VUs: the generator that offers the reads",
            )
        ).result
        assert cap is not None and reads_cap is not None
        ov.login_capacity = cap.count(200) / cap.duration if cap.duration else 0.0
        ov.read_capacity = reads_cap.rps
        ov.login_rate = max(2.0, 2 * ov.login_capacity)
        ov.read_rate = max(10.0, ov.read_capacity / 2)
        ov.write_rate = max(2.0, ov.login_capacity / 4)
        read_flow = Flow(ov.read_rate, read_reqs, *_vus(ov.read_rate))
        ov.idle = k6.run(gateway, {"reads": read_flow}, ctx.duration)
        tag = uuid.uuid4().hex[:8]
        register = K6Req(
            "register",
            "POST",
            f"{AUTH}/register",
            (202,),
            JSON,
            json.dumps({"email": f"ovl-{tag}-{{{{n}}}}@example.com", "password": USER_PASSWORD}),
            unique=True,
        )
        login_reqs = [K6Req("login", "POST", r.path, (200,), r.headers, r.body) for r in logins]
        ov.storm = k6.run(
            gateway,
            {
                "reads": read_flow,
                "logins": Flow(ov.login_rate, login_reqs, *_vus(ov.login_rate * 10)),
                "registrations": Flow(ov.write_rate, [register], *_vus(ov.write_rate * 10)),
            },
            ctx.duration,
        )
        ov.acked = ov.storm.kind("register").ok
        ov.stored = fixtures.count_accounts(ctx.database_url, f"ovl-{tag}-")
        ov.mode = "open loop (k6 constant arrival rate) through the gateway"
    except Exception as exc:
        ov.mode = f"failed: {type(exc).__name__}: {str(exc)[:300]}"
        measured = {r.name for r in ctx.report.rows}
        for name in (LOGIN_CAP, READ_CAP):
            if name not in measured:
                ctx.report.add(Row("overload", name, reason=ov.mode))
