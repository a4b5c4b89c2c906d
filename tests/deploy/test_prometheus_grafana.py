"""Prometheus config, recording and alert rules (promtool: check and unit tests), Grafana
provisioning and dashboards; every metric they name is one the code defines."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.support import APPS, DEPLOY, PORTS, defined_metrics, promql_metric_names

PROM = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
# Made by Prometheus itself, not by our code.
PROMETHEUS_SERIES = {"up"}
ALERTS = {
    "HighErrorRatio",
    "HighLatencyP99",
    "UpstreamDown",
    "CircuitOpen",
    "OutboxBacklogGrowing",
    "EmailQueueBacklog",
    "DeadEmails",
    "LoginFailureSpike",
    "RefreshTokenReuse",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    # No skip when promtool is missing: deploy/tools/install-tools.sh installs it.
    return subprocess.run(
        ["promtool", *args], capture_output=True, text=True, timeout=120, cwd=PROM
    )


def test_promtool_check_config() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", *(str(p) for p in RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests() -> None:
    tests = sorted(str(p) for p in (PROM / "tests").glob("*.yml"))
    result = promtool("test", "rules", *tests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(tests)


def rules() -> list[dict[str, Any]]:
    return [
        r for p in RULE_FILES for g in yaml.safe_load(p.read_text())["groups"] for r in g["rules"]
    ]


def test_every_alert_exists_and_is_unit_tested_both_ways() -> None:
    alerts = {r["alert"] for r in rules() if "alert" in r}
    assert alerts == ALERTS
    runbook = (DEPLOY.parent / "docs" / "operations.md").read_text()
    for alert in alerts:
        assert f"\n### {alert}\n" in runbook, alert  # the anchor runbook_url points at
    cases = [
        c
        for p in (PROM / "tests").glob("*.yml")
        for t in yaml.safe_load(p.read_text())["tests"]
        for c in t["alert_rule_test"]
    ]
    for alert in alerts:
        outcomes = {bool(c["exp_alerts"]) for c in cases if c["alertname"] == alert}
        assert outcomes == {True, False}, alert


def test_scrape_config_covers_every_process_with_a_service_label() -> None:
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    for app in APPS:
        # Every replica of a scaled service is a target (tests/deploy/test_compose_up.py);
        # the gateway's /metrics is on its operator port only (never published).
        port = 9000 if app == "gateway" else PORTS[app]
        assert jobs[app]["dns_sd_configs"] == [
            {"names": [app], "type": "A", "port": port, "refresh_interval": "5s"}
        ]
        relabel = jobs[app]["relabel_configs"][0]
        assert relabel == {"source_labels": ["job"], "target_label": "service"}


def dashboard_exprs() -> list[tuple[str, str]]:
    exprs = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            exprs += [(f"{path.name}: {panel['title']}", t["expr"]) for t in panel["targets"]]
    return exprs


def test_dashboards_are_valid_and_provisioned() -> None:
    names = {p.stem for p in DASHBOARDS}
    assert names == {"overview", "auth", "users", "catalog", "gateway", "jobs-events"}
    datasource = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uid = datasource["datasources"][0]["uid"]
    uids = set()
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        uids.add(board["uid"])
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)) and ids, path.name
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == uid
            assert panel["targets"] and all(t["expr"] for t in panel["targets"])
            assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
    assert len(uids) == len(DASHBOARDS)
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "shopstack.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


@pytest.mark.parametrize("source", ["rules", "dashboards"])
def test_every_metric_named_is_defined_in_the_code(source: str) -> None:
    recorded = {r["record"] for r in rules() if "record" in r}
    exprs = (
        [(r.get("alert") or r["record"], r["expr"]) for r in rules()]
        if source == "rules"
        else dashboard_exprs()
    )
    known = defined_metrics() | PROMETHEUS_SERIES | recorded
    unknown = {
        (where, name)
        for where, expr in exprs
        for name in promql_metric_names(expr)
        if name not in known
    }
    assert unknown == set()
    assert len(exprs) > 10


def test_the_metric_name_parser_finds_names_and_skips_labels() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (service, le) (rate(x_seconds_bucket{a="b"}[5m])))'
        " > 0.5 and on (service) max(up) == 0"
    )
    assert promql_metric_names(expr) == {"x_seconds_bucket", "up"}


def test_dashboards_mount_matches_compose(tmp_path: Path) -> None:
    compose = yaml.safe_load((DEPLOY.parent / "docker-compose.yml").read_text())
    volumes = compose["services"]["grafana"]["volumes"]
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in volumes
    prom_volumes = compose["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/rules:/etc/prometheus/rules:ro" in prom_volumes
