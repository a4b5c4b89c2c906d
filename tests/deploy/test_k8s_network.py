"""deploy/k8s, issue 18 (network and edge): rendered with `kubectl kustomize` for both
overlays, the NetworkPolicies are evaluated as Kubernetes would for concrete callers
(an attacker pod in the namespace, the ingress controller, Prometheus...), and the
client-address setting is present, narrow and coherent with them."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from services import registry
from tests.deploy.support import PORTS, kustomize

OVERLAYS = ("dev", "prod")


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(kustomize(request.param)) if d]


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: dict[str, str]
    ports: dict[str, int]  # named container ports


def _selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return True
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions", ()):
        value = labels.get(expr["key"])
        if expr["operator"] == "In" and value not in expr["values"]:
            return False
        if expr["operator"] == "NotIn" and value in expr["values"]:
            return False
        if expr["operator"] == "Exists" and value is None:
            return False
    return True


def _peer_matches(peer: dict[str, Any], source: Pod, namespace: str) -> bool:
    if "ipBlock" in peer:
        return False  # none used; an ipBlock would need its own reasoning
    ns_selector = peer.get("namespaceSelector")
    if ns_selector is None:
        ns_ok = source.namespace == namespace
    else:
        ns_ok = _selects(ns_selector, {"kubernetes.io/metadata.name": source.namespace})
    return ns_ok and _selects(peer.get("podSelector"), source.labels)


def allowed(docs: list[dict[str, Any]], source: Pod, target: Pod, port: int) -> bool:
    """Kubernetes' ingress semantics: isolated once any policy selects the pod; then
    allowed if any rule of any selecting policy admits the source on that port."""
    policies = [
        d
        for d in docs
        if d["kind"] == "NetworkPolicy"
        and d["metadata"]["namespace"] == target.namespace
        and _selects(d["spec"]["podSelector"], target.labels)
        and "Ingress" in d["spec"].get("policyTypes", ["Ingress"])
    ]
    if not policies:
        return True
    for policy in policies:
        for rule in policy["spec"].get("ingress", ()):
            ports = rule.get("ports")
            if ports is not None and not any(
                target.ports.get(p["port"], p["port"]) == port for p in ports
            ):
                continue
            peers = rule.get("from")
            if peers is None or any(_peer_matches(p, source, target.namespace) for p in peers):
                return True
    return False


def _namespace(docs: list[dict[str, Any]]) -> str:
    (ns,) = [d for d in docs if d["kind"] == "Namespace"]
    return str(ns["metadata"]["name"])


def _pods(docs: list[dict[str, Any]]) -> dict[str, Pod]:
    ns = _namespace(docs)
    pods: dict[str, Pod] = {}
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            template = d["spec"]["template"]
            (container,) = template["spec"]["containers"]
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", ())}
            pods[d["metadata"]["name"]] = Pod(ns, template["metadata"]["labels"], ports)
    # The datastores as the dev overlay expects them in the namespace.
    pods["postgres"] = Pod(ns, {"app.kubernetes.io/name": "postgres"}, {})
    pods["redis"] = Pod(ns, {"app.kubernetes.io/name": "redis"}, {})
    return pods


INGRESS = Pod("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"}, {})
PROMETHEUS = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"}, {})
OTHER_NAMESPACE = Pod("default", {"app": "anything"}, {})


def test_network_policies_allow_exactly_the_paths_the_stack_uses(
    rendered: list[dict[str, Any]],
) -> None:
    pods = _pods(rendered)
    attacker = Pod(_namespace(rendered), {"app.kubernetes.io/name": "compromised"}, {})
    ports = {**PORTS, "postgres": 5432, "redis": 6379}

    def can(source: Pod | str, target: str, port: int | None = None) -> bool:
        src = pods[source] if isinstance(source, str) else source
        return allowed(rendered, src, pods[target], port or ports[target])

    # Clients: through the ingress controller to the gateway's API port, nothing else.
    assert can(INGRESS, "gateway")
    assert not can(INGRESS, "gateway", 9000)
    for name in (*registry.names(), "postgres", "redis"):
        assert not can(INGRESS, name), name
    # Only the gateway reaches the services (auth: users and catalog read its JWKS).
    for name in registry.names(api_only=True):
        assert can("gateway", name)
        assert not can(attacker, name) and not can(OTHER_NAMESPACE, name)
        assert not can("worker", name)
    assert can("users", "auth") and can("catalog", "auth")
    assert not can("users", "catalog") and not can("catalog", "users")
    assert not can(attacker, "gateway") and not can(OTHER_NAMESPACE, "gateway")
    # The datastores: services, worker, migrations; the gateway to Redis only.
    for name in registry.names():
        assert can(name, "postgres") and can(name, "redis")
    assert can("migrate", "postgres")
    assert can("gateway", "redis") and not can("gateway", "postgres")
    for store in ("postgres", "redis"):
        assert not can(attacker, store) and not can(OTHER_NAMESPACE, store)
        assert not can(INGRESS, store) and not can(PROMETHEUS, store)
    # Prometheus: every process's metrics port (the gateway's operator port).
    assert can(PROMETHEUS, "gateway", 9000) and not can(PROMETHEUS, "gateway", 8000)
    for name in registry.names():
        assert can(PROMETHEUS, name)
    # Default deny: every pod of ours is isolated (a new Deployment is too).
    assert not can(attacker, "migrate", 8080)


def test_the_evaluator_sees_an_open_namespace_as_open() -> None:
    """Without the policies every pod reaches every pod (the finding): the evaluator
    above must say so, or its 'not allowed' answers prove nothing."""
    pods = _pods([d for d in yaml.safe_load_all(kustomize("dev")) if d])
    attacker = Pod(pods["auth"].namespace, {"app.kubernetes.io/name": "compromised"}, {})
    assert allowed([], attacker, pods["redis"], 6379)
    assert allowed([], attacker, pods["auth"], 8001)


def _env(docs: list[dict[str, Any]], name: str) -> dict[str, str]:
    """The environment a Deployment's container gets (ConfigMap envFrom, then env)."""
    config = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    (deployment,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", ()):
        env.update(config[source["configMapRef"]["name"]])
    for item in container.get("env", ()):
        if "value" in item:
            env[item["name"]] = item["value"]
    return env


def test_client_address_is_trusted_from_the_ingress_and_gateway_only(
    rendered: list[dict[str, Any]],
) -> None:
    """The gateway keys limits on the client behind the ingress, and auth on the client
    behind the gateway: both believe X-Forwarded-For from the pod network only (never
    "*", never a public range); the NetworkPolicies make that network the ingress
    controller (gateway) and the gateway (auth) on the API ports."""
    for name in ("gateway", "auth"):
        value = _env(rendered, name).get("FORWARDED_ALLOW_IPS", "")
        entries = [e.strip() for e in value.split(",") if e.strip()]
        assert entries, f"{name}: FORWARDED_ALLOW_IPS is not set (every client shares one IP)"
        for entry in entries:
            assert entry != "*"
            network = ipaddress.ip_network(entry)
            assert network.is_private and not network.is_loopback, entry
            assert network.prefixlen >= 8, entry
    pods = _pods(rendered)
    # Who can put a forwarded address in front of the gateway's and auth's API ports.
    callers = [INGRESS, PROMETHEUS, OTHER_NAMESPACE, *pods.values()]
    assert [c for c in callers if allowed(rendered, c, pods["gateway"], 8000)] == [INGRESS]
    to_auth = {
        c.labels.get("app.kubernetes.io/name")
        for c in callers[2:]
        if allowed(rendered, c, pods["auth"], 8001)
    }
    assert to_auth == {"gateway", "users", "catalog"}  # users/catalog: the JWKS only
    # Operator endpoints are on a port the ingress never routes to.
    (ingress,) = [d for d in rendered if d["kind"] == "Ingress"]
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            assert path["backend"]["service"]["port"] == {"name": "http"}
    gateway_env = _env(rendered, "gateway")
    assert gateway_env["OPERATOR_PORT"] == str(pods["gateway"].ports["operator"])
