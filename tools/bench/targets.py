"""The issue's targets, judged from one run's rows: ratios only, never absolute times."""

from __future__ import annotations

from collections.abc import Callable

from tools.bench import scenarios as s
from tools.bench.loadspec import Result
from tools.bench.results import Report, Target


def _ratio(
    report: Report,
    name: str,
    goal: str,
    a: str,
    b: str,
    fn: Callable[[Result, Result], float],
    ok: Callable[[float], bool | None],
    fmt: str,
) -> Target:
    ra, rb = report.get(a), report.get(b)
    if ra is None or rb is None:
        missing = a if ra is None else b
        return Target(name, goal, f"not measured: `{missing}` has no result")
    value = fn(ra, rb)
    return Target(name, goal, fmt.format(value), ok(value))


_DEEP = 4  # the deep-page target's index below


def judge(report: Report, products: int) -> list[Target]:
    targets = [
        # Issue 20: the gateway judged against nginx, a plain proxy of the same upstream.
        _ratio(
            report,
            "gateway vs nginx throughput (cached read, all checks vs none)",
            ">= 0.6 of nginx",
            s.CACHED_GW,
            s.CACHED_NGINX,
            lambda a, b: a.rps / b.rps if b.rps else 0.0,
            lambda v: v >= 0.6,
            "{:.2f} of nginx",
        ),
        _ratio(
            report,
            "latency the gateway adds (p50, 1 connection, vs direct)",
            "<= 0.3 ms",
            s.LAT_GW,
            s.LAT_CACHED,
            lambda a, b: a.p50 - b.p50,
            lambda v: v <= 0.3,
            "{:+.2f} ms",
        ),
        _ratio(
            report,
            "latency nginx adds (p50, 1 connection, vs direct): the reference",
            "(reference, not judged)",
            s.LAT_NGINX,
            s.LAT_CACHED,
            lambda a, b: a.p50 - b.p50,
            lambda v: None,
            "{:+.2f} ms",
        ),
        _ratio(
            report,
            "cached product read vs bare FastAPI",
            ">= 60 % of the ceiling",
            s.CACHED,
            s.BARE,
            lambda a, b: 100 * a.rps / b.rps if b.rps else 0.0,
            lambda v: v >= 60,
            "{:.0f} %",
        ),
        _ratio(
            report,
            f"deep keyset page vs page 1 (SQL p50, {products:,} rows)",
            "<= 1.5x at 1,000,000 rows",
            s.SQLKEY,
            s.SQL1,
            lambda a, b: a.p50 / b.p50 if b.p50 else 0.0,
            lambda v: v <= 1.5,
            "{:.2f}x",
        ),
        _ratio(
            report,
            "cached-read p99 during a login storm vs idle",
            "< 3x",
            s.STORM_READ,
            s.IDLE,
            lambda a, b: a.p99 / b.p99 if b.p99 else 0.0,
            lambda v: v < 3,
            "{:.1f}x",
        ),
    ]
    if products < 1_000_000:
        targets[_DEEP].measured += f" (only {products:,} rows: not the target's size)"
        targets[_DEEP].passed = None if targets[_DEEP].passed else targets[_DEEP].passed
    targets += _overload_targets(report)
    targets.append(_knee_target(report))
    return targets


def _overload_targets(report: Report) -> list[Target]:
    ov = report.overload
    names = (
        ("overload: reads p99 vs idle p99, and their 5xx", "<= 3x and 0"),
        ("overload: excess logins refused (503 p99), none failing otherwise", "< 100 ms and 0"),
        ("overload: registrations acknowledged but not stored", "0"),
    )
    if ov.idle is None or ov.storm is None:
        return [Target(n, g, f"not measured: {ov.mode or 'not run'}") for n, g in names]
    idle, reads, logins = ov.idle.kind("read"), ov.storm.kind("read"), ov.storm.kind("login")
    ratio = reads.p99 / idle.p99 if idle.p99 else 0.0
    bad_reads = reads.server_errors + reads.shed + reads.failed
    odd_logins = logins.server_errors + logins.failed
    lost = max(0, ov.acked - ov.stored)
    return [
        Target(
            *names[0],
            f"{reads.p99:.2f} / {idle.p99:.2f} ms = {ratio:.1f}x; {bad_reads} 5xx or errors"
            f" in {reads.total:,} reads",
            ratio <= 3 and bad_reads == 0,
        ),
        Target(
            *names[1],
            f"{logins.shed:,} of {logins.total:,} refused: p99 {logins.shed_p99:.1f} ms, max"
            f" {logins.shed_max:.1f} ms; {odd_logins} other 5xx or errors",
            bool(logins.shed) and logins.shed_p99 < 100 and odd_logins == 0,
        ),
        Target(*names[2], f"{ov.acked} acked, {ov.stored} stored, {lost} lost", lost == 0),
    ]


def _knee_target(report: Report) -> Target:
    name, goal = "mix at the knee: 5xx and lost writes", "0 and 0"
    knee = report.knee
    step = next((st for st in knee.steps if st[0] == knee.knee), None)
    if step is None:
        why = knee.mode if not knee.steps else "even the first step broke the budget"
        return Target(name, goal, f"no knee: {why}")
    rate, result, acked, stored = step
    lost = max(0, acked - stored)
    return Target(
        name,
        goal,
        f"{rate} req/s: {result.server_errors} 5xx, {acked} writes acknowledged,"
        f" {stored} stored, {lost} lost",
        result.server_errors == 0 and lost == 0,
    )
