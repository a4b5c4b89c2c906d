"""The image's one-shot and non-gunicorn processes, started the way compose and Kubernetes
start them: the environment each gives the container, a read-only root, an empty /tmp
(compose's tmpfs, Kubernetes' emptyDir), uid 10001, no capabilities.

Regression tests of issue 16: `migrate` died on a missing Prometheus multiprocess folder
(nothing had made it in the fresh /tmp), and the worker restarted forever because uvicorn
read WEB_CONCURRENCY=2 (meant for gunicorn) as its own worker count.

PostgreSQL and Redis are the compose file's own (roles and schema from its init script);
the Kubernetes environment is the prod overlay's ConfigMap and env, with the Secret's
values from the dev overlay's generator (the same development passwords as .env.example).
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from tests.deploy.docker import Compose, docker_inspect, require_docker
from tests.deploy.support import kustomize

pytestmark = pytest.mark.timeout(900)

SOURCES = ("compose", "kubernetes")


@dataclass
class Deps:
    compose: Compose
    network: str
    config: dict[str, Any]  # `docker compose config` (interpolated with .env.example)


@pytest.fixture(scope="module")
def deps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deps]:
    require_docker()
    compose = Compose(tmp_path_factory.mktemp("image") / "shopstack")
    try:
        with compose.step("build the image, start PostgreSQL and Redis", "postgres", "redis"):
            compose.run("build", "migrate", timeout=900)
            compose.run("up", "--wait", "--wait-timeout", "120", "postgres", "redis", timeout=300)
            config = json.loads(compose.run("config", "--format", "json").stdout)
        yield Deps(compose, f"{compose.project}_default", config)
    finally:
        compose.down()


def _compose_env(deps: Deps, service: str) -> dict[str, str]:
    return {k: str(v) for k, v in deps.config["services"][service]["environment"].items()}


def _kubernetes_env(kind: str, name: str) -> dict[str, str]:
    """The container's environment as the kubelet builds it: envFrom, then env."""
    prod = list(yaml.safe_load_all(kustomize("prod")))
    dev = list(yaml.safe_load_all(kustomize("dev")))
    config = next(
        d["data"]
        for d in prod
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("shopstack-config")
    )
    # Production's Secret comes from the operator's store: the dev overlay gives its keys,
    # and fresh random values stand in for its secrets (production refuses the dev ones).
    secret = {
        k: secrets.token_hex(32) if k.endswith("-secret") else base64.b64decode(v).decode()
        for d in dev
        if d["kind"] == "Secret" and d["metadata"]["name"].startswith("shopstack-secrets")
        for k, v in d["data"].items()
    }
    workload = next(d for d in prod if d["kind"] == kind and d["metadata"]["name"] == name)
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert source["configMapRef"]["name"].startswith("shopstack-config")
        env |= config
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        ref = item["valueFrom"]
        if "configMapKeyRef" in ref:
            env[item["name"]] = config[ref["configMapKeyRef"]["key"]]
        elif ref["secretKeyRef"]["key"] in secret:
            env[item["name"]] = secret[ref["secretKeyRef"]["key"]]
        else:
            assert ref["secretKeyRef"].get("optional"), item
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    return env


def _environment(deps: Deps, source: str, service: str) -> dict[str, str]:
    if source == "compose":
        return _compose_env(deps, service)
    kind = "Job" if service == "migrate" else "Deployment"
    return _kubernetes_env(kind, service)


def _docker_run(deps: Deps, env: dict[str, str], *args: str) -> list[str]:
    """How compose and Kubernetes run it: read-only root, an empty /tmp, uid 10001."""
    command = [
        "docker",
        "run",
        "--network",
        deps.network,
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges:true",
        "--user",
        "10001:10001",
    ]
    for key, value in env.items():
        command += ["-e", f"{key}={value}"]
    return [*command, *args]


@pytest.mark.parametrize("source", SOURCES)
def test_migrate_runs_with_an_empty_tmp(deps: Deps, source: str) -> None:
    env = _environment(deps, source, "migrate")
    image_env = dict(
        item.split("=", 1) for item in docker_inspect(deps.compose.image)["Config"]["Env"]
    )
    # What made it fail: the metrics folder inside the empty mount, made by nobody.
    assert (image_env | env)["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")
    result = subprocess.run(
        _docker_run(deps, env, "--rm", deps.compose.image, "migrate"),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tables = deps.compose.run(
        "exec",
        "-T",
        "postgres",
        "psql",
        "-U",
        "postgres",
        "-d",
        "shopstack",
        "-Atc",
        "SELECT table_schema FROM information_schema.tables WHERE table_name='alembic_version'",
    ).stdout.split()
    assert {"auth", "users", "catalog"} <= set(tables)


@pytest.mark.parametrize("source", SOURCES)
def test_the_worker_starts_with_the_environment_it_is_given(deps: Deps, source: str) -> None:
    env = _environment(deps, source, "worker")
    assert int(env["WEB_CONCURRENCY"]) > 1  # what made uvicorn refuse to start
    deps.compose.run("run", "--rm", "migrate", timeout=180)  # the schema the worker reads
    name = f"{deps.compose.project}-worker-{source}-{uuid.uuid4().hex[:6]}"
    subprocess.run(
        _docker_run(deps, env, "-d", "--name", name, deps.compose.image, "worker"),
        check=True,
        capture_output=True,
        timeout=60,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            state = docker_inspect(name)["State"]
            assert state["Running"], f"the worker exited {state['ExitCode']}: {_logs(name)}"
            alive = subprocess.run(
                ["docker", "exec", name, "python", "/app/deploy/docker/healthcheck.py", "/healthz"],
                capture_output=True,
                timeout=30,
            )
            if alive.returncode == 0:
                break
            assert time.monotonic() < deadline, f"no /healthz within 60 s: {_logs(name)}"
            time.sleep(1)
        # And it stops cleanly, as `docker compose stop` or a pod deletion asks it to.
        subprocess.run(
            ["docker", "stop", "-t", "40", name], check=True, capture_output=True, timeout=90
        )
        assert docker_inspect(name)["State"]["ExitCode"] == 0, _logs(name)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)


def _logs(name: str) -> str:
    out = subprocess.run(
        ["docker", "logs", "--tail", "30", name], capture_output=True, text=True, timeout=30
    )
    return out.stdout + out.stderr
