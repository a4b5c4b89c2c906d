"""The benchmark, shrunk to seconds: it must run end to end on the real stack (gunicorn,
PostgreSQL, Redis) and write a complete report. Timings are never asserted."""

from __future__ import annotations

import multiprocessing
import re
from concurrent.futures import ProcessPoolExecutor

import pytest

from tests.support.infra import Infra, with_redis_db, worker_index
from tools.bench import bench, scenarios
from tools.bench.results import Report

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("bench")]

EVERY_ROW = [
    scenarios.RAW,
    scenarios.BARE,
    scenarios.CACHED,
    scenarios.CACHED_GW,
    scenarios.CACHED_NGINX,
    scenarios.LAT_BARE,
    scenarios.LAT_CACHED,
    scenarios.LAT_GW,
    scenarios.LAT_NGINX,
    scenarios.UNCACHED,
    scenarios.UNCACHED_GW,
    scenarios.LIST1,
    scenarios.LISTDEEP,
    scenarios.SQL1,
    scenarios.SQLKEY,
    scenarios.SQLOFF,
    scenarios.IDLE,
    scenarios.STORM_READ,
    scenarios.STORM,
    scenarios.LOGIN_CAP,
    scenarios.READ_CAP,
]


@pytest.fixture(scope="module")
def smoke(
    infra: Infra, worker_id: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Report, str]:
    out = tmp_path_factory.mktemp("bench") / "benchmarks.md"
    # In a fresh process, as `make bench` runs: the bench starts and signals a whole stack
    # and runs its own event loops, and an xdist worker that had run it in-process hung
    # in a later test now and then.
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        report = pool.submit(
            bench.main,
            [
                "--smoke",
                "--duration",
                "1",
                "--connections",
                "8",
                # the Python generator: what CI without wrk uses, and a separate process too
                "--generator",
                "python",
                "--database-url",
                infra.admin_database_url,
                "--redis-url",
                # Its own db: the bench flushes it, and this worker's later tests keep
                # state in theirs (a flushed db hung the next test now and then).
                with_redis_db(infra.redis_url, 15),
                "--db-name",
                f"shopstack_bench_smoke_{worker_index(worker_id)}",
                "--out",
                str(out),
            ],
        ).result()
    return report, out.read_text()


def test_every_scenario_has_numbers_or_a_reason(smoke: tuple[Report, str]) -> None:
    report, text = smoke
    assert [r.name for r in report.rows] == EVERY_ROW
    for row in report.rows:
        assert (row.result is None) != (row.reason is None), row
        if row.result is not None:
            assert row.result.requests > 0, row.name
            assert row.result.p50 <= row.result.p99, row.name
        line = next(x for x in text.splitlines() if x.startswith(f"| {row.group} | {row.name} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        if row.result is not None:
            assert all(re.fullmatch(r"[\d,.]+", c) for c in cells[2:6]), line
        else:
            assert cells[2].startswith(("not available", "failed")), line


def test_the_ceilings_and_the_catalog_are_measured(smoke: tuple[Report, str]) -> None:
    report, _ = smoke
    for name in (
        scenarios.RAW,
        scenarios.BARE,
        scenarios.CACHED,
        # the gateway and its yardstick, nginx (make test installs it), on the same reads
        scenarios.CACHED_GW,
        scenarios.CACHED_NGINX,
        scenarios.LAT_NGINX,
        scenarios.LIST1,
        scenarios.SQLKEY,
        scenarios.SQLOFF,
    ):
        result = report.get(name)
        assert result is not None and result.server_errors == 0, name


def test_the_report_names_its_generator_targets_and_knee(smoke: tuple[Report, str]) -> None:
    report, text = smoke
    assert report.generator == "python"
    assert "python-aiohttp" in text or "built-in aiohttp" in text
    assert len(report.targets) == 10
    for target in report.targets:
        assert f"| {target.name} |" in text
        assert target.verdict in text
    assert "## Realistic mix, rising arrival rate" in text
    assert "## Overload: logins at 2x" in text
    assert report.knee.mode and report.overload.mode
    if report.knee.steps:
        for _rate, result, acked, stored in report.knee.steps:
            assert result.requests > 0
            assert stored >= acked  # every acknowledged write is in the database
    if report.overload.storm is not None:
        assert report.overload.stored >= report.overload.acked
        assert report.overload.storm.kind("read").ok > 0
