"""docker-compose.yml: valid against the Compose specification schema (vendored from the
docker-compose 1.29.2 release on PyPI, compose/config/compose_spec.json), every long-running
service has a health check, start order is by health, secrets come from .env."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from services import registry
from tests.deploy.support import APPS, PORTS, ROOT, env_names_read

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
INFRA = {"postgres", "redis"}


def test_compose_file_matches_the_compose_spec() -> None:
    schema = json.loads((Path(__file__).parent / "compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(COMPOSE)]
    assert errors == []
    # The schema does catch mistakes (guards against a schema that accepts anything).
    broken = {"services": {"x": {"image": "x", "depends_on": {"y": {"condition": "later"}}}}}
    assert list(validator.iter_errors(broken))


def test_the_stack_has_every_container() -> None:
    expected = {*APPS, "postgres", "redis", "mailpit", "migrate", "prometheus", "grafana"}
    assert set(SERVICES) == expected


@pytest.mark.parametrize("name", sorted(set(SERVICES) - {"migrate"}))
def test_every_long_running_service_has_a_health_check(name: str) -> None:
    check = SERVICES[name].get("healthcheck")
    assert check and not check.get("disable") and check["test"]


def test_migration_is_a_one_shot_job_the_services_wait_for() -> None:
    migrate = SERVICES["migrate"]
    assert migrate["command"] == ["migrate"] and migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in registry.names():
        deps = SERVICES[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"
        for infra in INFRA:
            assert deps[infra]["condition"] == "service_healthy", (name, infra)
    assert SERVICES["worker"]["depends_on"]["mailpit"]["condition"] == "service_healthy"


def test_gateway_waits_for_healthy_upstreams() -> None:
    deps = SERVICES["gateway"]["depends_on"]
    for upstream in (*registry.names(api_only=True), "redis"):
        assert deps[upstream]["condition"] == "service_healthy"
    assert SERVICES["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_only_the_gateway_publishes_an_api_port() -> None:
    published = {n: s.get("ports", []) for n, s in SERVICES.items() if s.get("ports")}
    assert published["gateway"] == ["${GATEWAY_PORT:-8000}:8000"]
    # Operator UIs are published on the loopback interface only.
    for name in ("mailpit", "prometheus", "grafana"):
        assert all(p.startswith("127.0.0.1:") for p in published.pop(name))
    assert set(published) == {"gateway"}


@pytest.mark.parametrize("name", APPS)
def test_app_containers_run_the_right_process_hardened(name: str) -> None:
    service = SERVICES[name]
    assert service["command"] == [name]
    assert service["build"]["dockerfile"] == "deploy/Dockerfile"
    assert service["read_only"] is True and service["tmpfs"] == ["/tmp"]
    assert service["cap_drop"] == ["ALL"]
    env = service["environment"]
    assert env["PORT"] == str(PORTS[name])
    assert env["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")
    # Healthy only when its dependencies answer, on its own port.
    assert service["healthcheck"]["test"][-1] == "/readyz"
    # Docker's stop timeout outlasts gunicorn's graceful drain.
    grace = int(service["stop_grace_period"].rstrip("s"))
    assert grace > int(env["GRACEFUL_TIMEOUT"])


@pytest.mark.parametrize("name", [*APPS, "migrate"])
def test_app_env_var_names_are_read_by_the_code(name: str) -> None:
    unknown = set(SERVICES[name]["environment"]) - env_names_read()
    assert unknown == set()


def test_each_service_connects_with_its_own_database_role() -> None:
    for name in registry.names():
        url = SERVICES[name]["environment"]["DATABASE_URL"]
        assert url.startswith(f"postgresql://shopstack_{name}:")
    assert "shopstack_migrator" in SERVICES["migrate"]["environment"]["DATABASE_URL"]
    assert "DATABASE_URL" not in SERVICES["gateway"]["environment"]


def test_every_interpolated_variable_has_an_example_value() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    required = {v for v in used if re.search(r"\$\{" + v + r":\?", text)}
    assert required <= set(example)
    assert required >= {"CURSOR_SECRET", "AUTH_KEY_ENCRYPTION_SECRET", "POSTGRES_PASSWORD"}


def test_gen_secrets_writes_fresh_random_secrets(tmp_path: Path) -> None:
    script = ROOT / "deploy" / "gen-secrets.sh"
    outputs = []
    for i in range(2):
        target = tmp_path / f"env{i}"
        subprocess.run(
            ["bash", str(script), "--production", str(target)],
            check=True,
            capture_output=True,
            timeout=30,
        )
        assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
        values = dict(
            line.split("=", 1)
            for line in target.read_text().splitlines()
            if line and not line.startswith("#")
        )
        outputs.append(values)
    first, second = outputs
    assert first["ENVIRONMENT"] == "production"
    secret_keys = [k for k in first if k.endswith(("SECRET", "PASSWORD"))]
    assert len(secret_keys) >= 9
    for key in secret_keys:
        assert re.fullmatch(r"[0-9a-f]{64}", first[key]), key
        assert first[key] != second[key]
    # An existing .env is never overwritten by accident.
    again = subprocess.run(
        ["bash", str(script), str(tmp_path / "env0")], capture_output=True, timeout=30
    )
    assert again.returncode != 0
