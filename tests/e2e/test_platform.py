"""Platform behaviour that only shows with real processes: metrics aggregated across
gunicorn workers, request ids in the JSON logs, and `make run` starting and stopping
cleanly with embedded servers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.infra import Infra
from tests.support.polling import eventually_sync
from tools.devstack.embedded import free_port
from tools.devstack.processes import ProcessSpec, Supervisor, pid_alive
from tools.devstack.stack import DEFAULT_PORTS, GUNICORN_CONF, ROOT, StackConfig, available

pytestmark = pytest.mark.e2e

ITEMS = 40
CLOSE = {"Connection": "close"}  # a new connection each time, so both workers get work


@pytest.fixture(scope="module")
def sample(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    """tests/e2e/sample_app.py under gunicorn with two workers and multiprocess metrics."""
    root = tmp_path_factory.mktemp("sample")
    port = free_port()
    metrics_dir = root / "metrics"
    supervisor = Supervisor(root / "logs", graceful_timeout=10.0)
    supervisor.add(
        ProcessSpec(
            name="sample",
            argv=[
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                str(GUNICORN_CONF),
                "tests.e2e.sample_app:create_app()",
            ],
            env={
                "BIND": f"127.0.0.1:{port}",
                "WEB_CONCURRENCY": "2",
                "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
                "SERVICE_NAME": "sample",
                "LOG_LEVEL": "INFO",
                "REDIS_URL": infra.redis_url,
                "GRACEFUL_TIMEOUT": "2",
            },
            port=port,
            cwd=ROOT,
            fresh_dirs=(metrics_dir,),
        )
    )
    supervisor.start_all(timeout=30)
    try:
        yield supervisor
    finally:
        supervisor.stop_all()


def _url(supervisor: Supervisor, path: str) -> str:
    return f"http://127.0.0.1:{supervisor.specs['sample'].port}{path}"


def _request_counts(text: str) -> dict[tuple[str, str, str], float]:
    counts: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "http_requests_total":
                labels = sample.labels
                key = (labels["method"], labels["route"], labels["status"])
                counts[key] = counts.get(key, 0) + sample.value
    return counts


def test_metrics_are_counted_once_per_request_across_workers(sample: Supervisor) -> None:
    pids: set[int] = set()
    sent = 0
    deadline = time.monotonic() + 15
    with httpx.Client(headers=CLOSE, timeout=5) as client:
        # At least ITEMS distinct paths, and on until both workers have served some (the
        # second may still be booting when the first answers the health check).
        while sent < ITEMS or (len(pids) < 2 and time.monotonic() < deadline):
            sent += 1
            response = client.get(_url(sample, f"/items/{sent}"))
            assert response.status_code == 200
            pids.add(response.json()["pid"])
        assert len(pids) == 2, pids  # else this would not test the aggregation
        # A worker counts a request just after its answer has left (the middleware's
        # `finally`), so a scrape served by the other worker at that instant can be one
        # short: wait for the last count to land, then it must stay exact.
        settle = time.monotonic() + 2
        while (
            _request_counts(client.get(_url(sample, "/metrics")).text).get(
                ("GET", "/items/{item_id}", "200")
            )
            != sent
            and time.monotonic() < settle
        ):
            time.sleep(0.05)
        for _ in range(8):
            text = client.get(_url(sample, "/metrics")).text
            counts = _request_counts(text)
            assert counts[("GET", "/items/{item_id}", "200")] == sent
            routes = {route for _, route, _ in counts}
            assert not any(re.fullmatch(r"/items/\d+", route) for route in routes), routes
    assert len(sample.members("sample")) == 3  # master and two workers, all alive


def _log_line(supervisor: Supervisor, request_id: str, timeout: float = 5.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in supervisor.log_path("sample").read_text().splitlines():
            if request_id in line and line.startswith("{"):
                entry = json.loads(line)
                if entry.get("request_id") == request_id and entry.get("logger") == "access":
                    return dict(entry)
        time.sleep(0.05)
    raise AssertionError(f"no access log line with request id {request_id}")


def test_request_id_is_echoed_and_logged(sample: Supervisor) -> None:
    sent = f"e2e-{uuid.uuid4().hex}"
    response = httpx.get(_url(sample, "/items/7"), headers={"X-Request-ID": sent})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == sent
    entry = _log_line(sample, sent)
    assert entry["route"] == "/items/{item_id}"
    assert entry["status"] == 200
    assert entry["service"] == "sample"


def test_request_id_is_generated_when_absent_or_invalid(sample: Supervisor) -> None:
    plain = httpx.get(_url(sample, "/items/8"))
    generated = plain.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert _log_line(sample, generated)["status"] == 200
    # A header that could forge log lines is replaced, not echoed.
    forged = httpx.get(_url(sample, "/items/9"), headers={"X-Request-ID": "bad id\tinjected"})
    assert re.fullmatch(r"[0-9a-f]{32}", forged.headers["x-request-id"])


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_devstack_starts_with_embedded_servers_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    ports = {name: free_port() for name in DEFAULT_PORTS}
    argv = [
        sys.executable,
        "-m",
        "tools.devstack",
        "--data-dir",
        str(tmp_path),
        "--workers",
        "1",
        "--smtp-port",
        str(free_port()),
        "--quiet",
    ]
    for name, port in ports.items():
        argv += [f"--{name}-port", str(port)]
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env["LOG_LEVEL"] = "INFO"
    expected = available(StackConfig(database_url="", redis_url="", data_dir=tmp_path))
    targets = ["gateway"] if "gateway" in expected else expected
    output = (tmp_path / "devstack.out").open("wb")
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = started + 45
        pending = set(targets)
        out = tmp_path / "devstack.out"
        # Healthy targets, and the banner: printed once every process of the stack answers.
        while time.monotonic() < deadline and proc.poll() is None:
            pending = {n for n in pending if not _healthy(f"http://127.0.0.1:{ports[n]}/healthz")}
            if not pending and "shopstack is running" in out.read_text():
                break
            time.sleep(0.2)
        log = out.read_text()
        assert not pending, f"{pending} never answered:\n{log[-3000:]}"
        assert "shopstack is running" in log, log[-3000:]
        children = _descendants(proc.pid)
        postmaster = int((tmp_path / "pg" / "postmaster.pid").read_text().split()[0])
        assert len(children) >= len(expected)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, (tmp_path / "devstack.out").read_text()[-3000:]
    finally:
        if proc.poll() is None:  # a failed assertion: still stop it the clean way
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        output.close()
    eventually_sync(
        lambda: not any(map(pid_alive, children | {postmaster})),
        timeout=5,
        interval=0.1,
        what="every process of the stack gone",
    )
    assert not any(_healthy(f"http://127.0.0.1:{ports[n]}/healthz") for n in targets)
