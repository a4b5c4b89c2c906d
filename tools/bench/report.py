"""Write the report: a markdown table (every row next to its baseline), the targets
with PASS/MISS, the mix's knee, and a plot (matplotlib) beside the markdown file."""

from __future__ import annotations

from pathlib import Path

from tools.bench.results import Report, Row


def _num(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def _row(report: Report, row: Row) -> str:
    if row.result is None:
        return f"| {row.group} | {row.name} | {row.reason} | | | | | | |"
    r = row.result
    base = report.get(row.baseline) if row.baseline else None
    versus = ""
    if base is not None and base.rps:
        versus = f"{100 * r.rps / base.rps:.0f} % of *{row.baseline}*"
    elif row.baseline:
        versus = f"*{row.baseline}*: not measured"
    errors = f"{r.errors} / {r.server_errors}"
    return (
        f"| {row.group} | {row.name} | {_num(r.rps, 0)} | {_num(r.p50, 2)} | "
        f"{_num(r.p95, 2)} | {_num(r.p99, 2)} | {errors} | {versus} | {row.note} |"
    )


def _overload(report: Report) -> list[str]:
    ov = report.overload
    lines = [
        "",
        "## Overload: logins at 2x the hash pool's capacity, reads at half theirs",
        "",
        "Capacities measured first in this run (closed loop, rows *overload* above); then",
        "open loop through the gateway for the same time: the reads alone (idle), and the",
        "reads beside logins at twice the login capacity and a few registrations (writes).",
        f"Mode: {ov.mode}.",
        "",
    ]
    if ov.idle is None or ov.storm is None:
        return lines
    lines += [
        f"Login capacity {ov.login_capacity:,.1f}/s, read capacity {ov.read_capacity:,.0f}/s;"
        f" offered: logins {ov.login_rate:,.0f}/s, reads {ov.read_rate:,.0f}/s,"
        f" registrations {ov.write_rate:,.0f}/s.",
        "",
        "| run | kind | served | refused 503 | other 5xx | 4xx | errors | p50 ms | p99 ms |"
        " max ms | 503 p99 ms | 503 max ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, run in (("idle", ov.idle), ("overload", ov.storm)):
        for kind, k in sorted(run.kinds.items()):
            lines.append(
                f"| {label} | {kind} | {k.ok} | {k.shed} | {k.server_errors} | "
                f"{k.client_errors} | {k.failed} | {_num(k.p50, 2)} | {_num(k.p99, 2)} | "
                f"{_num(k.max, 1)} | {_num(k.shed_p99, 2)} | {_num(k.shed_max, 1)} |"
            )
    lines += [
        "",
        f"Iterations k6 could not start on time: idle {ov.idle.dropped},"
        f" overload {ov.storm.dropped}. Registrations answered 202: {ov.acked};"
        f" accounts stored: {ov.stored}; lost: {max(0, ov.acked - ov.stored)}.",
    ]
    return lines


def markdown(report: Report, plot: str | None) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `python -m tools.bench.bench` (see docs/performance.md for what each",
        "figure means). Numbers are from one run on one machine; compare ratios, not",
        "absolute values.",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in report.settings.items()]
    lines += [
        "",
        "## Scenarios",
        "",
        "| group | scenario | req/s | p50 ms | p95 ms | p99 ms | errors / 5xx |"
        " vs baseline | note |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    lines += [_row(report, row) for row in report.rows]
    lines += [
        "",
        "*errors* are transport failures (connect, read, timeout); *5xx* are server",
        "errors. Non-2xx client answers, if any, are in the mix table.",
        "",
    ]
    lines += ["## Targets", "", "| target | goal | measured | verdict |", "|---|---|---|---|"]
    lines += [f"| {t.name} | {t.goal} | {t.measured} | **{t.verdict}** |" for t in report.targets]
    lines += _overload(report)
    knee = report.knee
    lines += [
        "",
        "## Realistic mix, rising arrival rate",
        "",
        "Open loop: requests start at the step's rate whether or not earlier ones finished",
        "(k6 constant-arrival-rate, latency from the send). Budget per step: p99 <= 250 ms",
        "and failures (errors + 5xx, 503 refusals included) and iterations k6 could not start",
        "on time each <= 0.1 %. ",
        f"Mode: {knee.mode}.",
        "",
    ]
    if knee.steps:
        lines += [
            "| offered req/s | served req/s | p50 ms | p95 ms | p99 ms | errors | 5xx | 4xx |"
            " not started | writes acked | writes stored | lost |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for rate, r, acked, stored in knee.steps:
            lines.append(
                f"| {rate} | {_num(r.rps, 0)} | {_num(r.p50, 2)} | {_num(r.p95, 2)} | "
                f"{_num(r.p99, 2)} | {r.errors} | {r.server_errors} | "
                f"{r.client_errors} | {knee.dropped.get(rate, 0)} | {acked} | {stored} |"
                f" {max(0, acked - stored)} |"
            )
        lines += ["", f"Knee: {f'{knee.knee} req/s' if knee.knee else 'not found'}."]
    else:
        lines.append("No step ran.")
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report.notes]
    if plot:
        lines += ["", f"![throughput and latency]({plot})"]
    else:
        lines += ["", "No plot: matplotlib is not installed (pip install matplotlib)."]
    return "\n".join(lines) + "\n"


def draw(report: Report, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    measured = [r for r in report.rows if r.result is not None and "SQL" not in r.name]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6))
    names = [r.name for r in measured]
    left.barh(names, [r.result.rps for r in measured if r.result], color="tab:blue")
    left.invert_yaxis()
    left.set_xlabel("requests/s")
    left.set_title("Throughput per scenario")
    left.tick_params(axis="y", labelsize=7)
    steps = report.knee.steps
    if steps:
        cs = [c for c, *_ in steps]
        right.plot(cs, [r.rps for _, r, *_ in steps], "o-", color="tab:blue", label="req/s")
        right.set_xlabel("offered req/s (arrival rate)")
        right.set_ylabel("requests/s")
        twin = right.twinx()
        twin.plot(cs, [r.p99 for _, r, *_ in steps], "s--", color="tab:red", label="p99 ms")
        twin.set_ylabel("p99 ms")
        right.set_xscale("log", base=2)
    right.set_title("Realistic mix at rising arrival rate")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def write(report: Report, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_path = out.with_suffix(".png")
    plot = plot_path.name if draw(report, plot_path) else None
    out.write_text(markdown(report, plot))
