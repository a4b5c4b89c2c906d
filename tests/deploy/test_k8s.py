"""deploy/k8s: every manifest kustomize renders (dev and prod overlays) validates against the
Kubernetes schemas (kubernetes-validate, strict), and matches what the code serves and reads."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.support import APPS, PORTS, env_names_read, kustomize

OVERLAYS = ("dev", "prod")
K8S_VERSION = "1.30.0"
GRACEFUL_TIMEOUT = 30  # base ConfigMap; checked below


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(kustomize(request.param)) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_every_manifest_validates_against_the_kubernetes_schemas(
    rendered: list[dict[str, Any]],
) -> None:
    crds = []
    for doc in rendered:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            crds.append(doc)  # a CRD: no schema in kubernetes-validate; checked below
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    assert [d["kind"] for d in crds] == ["ServiceMonitor", "ServiceMonitor"]
    # The validator does reject a broken manifest.
    broken = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"replicas": "two"},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_every_kind_the_stack_needs_is_there(rendered: list[dict[str, Any]]) -> None:
    assert set(by_kind(rendered, "Deployment")) == set(APPS)
    assert set(by_kind(rendered, "Service")) == set(APPS)
    assert set(by_kind(rendered, "PodDisruptionBudget")) == set(APPS)
    assert set(by_kind(rendered, "HorizontalPodAutoscaler")) == {
        "gateway",
        "auth",
        "users",
        "catalog",
    }
    assert set(by_kind(rendered, "Job")) == {"migrate"}
    assert len(by_kind(rendered, "Namespace")) == 1
    ingress = next(iter(by_kind(rendered, "Ingress").values()))
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "gateway", "port": {"name": "http"}}


@pytest.mark.parametrize("name", APPS)
def test_deployment_probes_ports_and_security(rendered: list[dict[str, Any]], name: str) -> None:
    pod = by_kind(rendered, "Deployment")[name]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == [name]
    http = {"name": "http", "containerPort": PORTS[name], "protocol": "TCP"}
    # The gateway answers /readyz and /metrics on its operator port only.
    ready_port = "operator" if name == "gateway" else "http"
    if name == "gateway":
        operator = {"name": "operator", "containerPort": 9000, "protocol": "TCP"}
        assert container["ports"] == [http, operator]
        assert {"name": "OPERATOR_PORT", "value": "9000"} in container["env"]
    else:
        assert container["ports"] == [http]
    probes = {
        k: container[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes["readinessProbe"] == {"path": "/readyz", "port": ready_port}
    assert probes["livenessProbe"] == probes["startupProbe"] == {"path": "/healthz", "port": "http"}
    sec = container["securityContext"]
    assert sec["runAsNonRoot"] and sec["readOnlyRootFilesystem"]
    assert sec["allowPrivilegeEscalation"] is False and sec["capabilities"]["drop"] == ["ALL"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}} in pod["volumes"]
    res = container["resources"]
    assert res["requests"]["cpu"] and res["requests"]["memory"] and res["limits"]["memory"]
    # Drain: the endpoint is removed during preStop, then gunicorn has GRACEFUL_TIMEOUT.
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    if name != "worker":
        assert pod["terminationGracePeriodSeconds"] > GRACEFUL_TIMEOUT + int(pre_stop[1])
    service = by_kind(rendered, "Service")[name]
    assert service["spec"]["ports"][0]["port"] == PORTS[name]
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": name}


def test_config_and_env_names_are_read_by_the_code(rendered: list[dict[str, Any]]) -> None:
    (config,) = by_kind(rendered, "ConfigMap").values()
    data = config["data"]
    assert int(data["GRACEFUL_TIMEOUT"]) == GRACEFUL_TIMEOUT
    # Under /tmp (the emptyDir), never the mount itself: gunicorn deletes and recreates it.
    assert data["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")
    names = set(data)
    for workload in [*by_kind(rendered, "Deployment").values(), *by_kind(rendered, "Job").values()]:
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        names.update(e["name"] for e in container["env"])
    assert names - env_names_read() == set()


def test_secret_references_exist_in_the_dev_secret() -> None:
    docs = [d for d in yaml.safe_load_all(kustomize("dev")) if d]
    (secret,) = by_kind(docs, "Secret").values()
    refs = set()
    for workload in docs:
        if workload["kind"] not in ("Deployment", "Job"):
            continue
        for env in workload["spec"]["template"]["spec"]["containers"][0]["env"]:
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref and not ref.get("optional"):
                assert ref["name"] == secret["metadata"]["name"]
                refs.add(ref["key"])
    assert refs and refs <= set(secret["data"])
    # Production ships no secret values: the Secret comes from the cluster's secret store.
    prod = [d for d in yaml.safe_load_all(kustomize("prod")) if d]
    assert by_kind(prod, "Secret") == {}


def test_service_monitor_scrapes_every_service(rendered: list[dict[str, Any]]) -> None:
    monitors = by_kind(rendered, "ServiceMonitor")
    scraped: dict[str, str] = {}
    for monitor in monitors.values():
        selector = monitor["spec"]["selector"]
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["path"] == "/metrics"
        assert endpoint["relabelings"][0]["targetLabel"] == "service"
        for service in by_kind(rendered, "Service").values():
            labels = service["metadata"]["labels"]
            if not selector["matchLabels"].items() <= labels.items():
                continue
            excluded = any(
                e["operator"] == "NotIn" and labels.get(e["key"]) in e["values"]
                for e in selector.get("matchExpressions", ())
            )
            if excluded:
                continue
            assert service["metadata"]["name"] not in scraped  # scraped once
            assert any(p["name"] == endpoint["port"] for p in service["spec"]["ports"])
            scraped[service["metadata"]["name"]] = endpoint["port"]
    assert scraped == {name: "operator" if name == "gateway" else "http" for name in APPS}
