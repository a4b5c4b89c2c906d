"""What operators watch, checked against the running stack.

Real traffic goes through the gateway (registration, logins good and bad, refresh and
refresh-token reuse, profile reads, cached catalog reads, an admin write, a lockout,
an email through the worker). Then every process' /metrics is scraped and parsed, and
every metric named by a Grafana panel or a Prometheus rule must exist there (in the
process its `service` matcher names) and the traffic-driven ones must have moved.
The JSON logs must carry the request id from the gateway to the service and into the
email job the request started.
"""

from __future__ import annotations

import base64
import json
import random
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from prometheus_client.parser import text_string_to_metric_families

from services import registry
from services.common.settings import CommonSettings
from tests.e2e.conftest import Stack
from tests.support.stack import TEST_ENV
from tools.devstack.embedded import free_port
from tools.devstack.processes import Supervisor
from tools.devstack.smtp_sink import body_text
from tools.devstack.stack import DEFAULT_PORTS, ROOT, StackConfig, build_specs

pytestmark = pytest.mark.e2e

PROCESSES = ("gateway", *registry.names())
PROM = ROOT / "deploy" / "prometheus"
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
# Series Prometheus makes itself (per target), not our code.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
# Counters and histograms the traffic below must move (summed over every process).
TRAFFIC_DRIVEN = {
    "http_requests_total",
    "http_request_duration_seconds_bucket",
    "cache_requests_total",
    "rate_limit_rejections_total",
    "auth_logins_total",
    "auth_registrations_total",
    "auth_token_refreshes_total",
    "auth_refresh_token_reuse_total",
    "gateway_upstream_request_duration_seconds_bucket",
    "gateway_upstream_responses_total",
    "emails_queued_total",
    "emails_sent_total",
    "outbox_relayed_total",
    "events_consumed_total",
}
PASSWORD = "e2e-Observe-horse-battery-3"
ADMIN_PASSWORD = "e2e-Observe-admin-battery-4"

# ---- PromQL: the metric names an expression reads ---------------------------------------

_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "inf",
    "nan",
    "atan2",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)?\s*\{([^}]*)\}")
_MATCHER = re.compile(r'([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.I)
# Numbers first (0.99, 5m, 1e3, 0x1f) so no identifier is read out of one.
_TOKEN = re.compile(r"(?P<num>\d[\w.]*|\.\d[\w.]*)|(?P<ident>[A-Za-z_:][\w:]*)")


def selectors(expr: str) -> list[tuple[str, dict[str, str]]]:
    """(metric name, equality matchers) of every `name{...}` / `{__name__="..."}`."""
    found = []
    for match in _SELECTOR.finditer(expr):
        labels = {k: v for k, op, v in _MATCHER.findall(match.group(2)) if op == "="}
        name = match.group(1) or labels.pop("__name__", "")
        if name and name.lower() not in _KEYWORDS:
            found.append((name, labels))
    return found


def metric_names(expr: str) -> set[str]:
    """Metric identifiers of a PromQL expression: not functions, aggregations, keywords,
    label names (matchers, by/on lists), strings, numbers or durations."""
    names = {name for name, _ in selectors(expr)}
    text = _SELECTOR.sub(lambda m: f" {m.group(1) or ''} ", _STRING.sub('""', expr))
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries: [5m], [1h:1m]
    text = _LABEL_LIST.sub(" ", text)
    for match in _TOKEN.finditer(text):
        word = match.group("ident")
        if word is None or word.lower() in _KEYWORDS:
            continue
        if text[match.end() :].lstrip().startswith("("):  # a function or aggregation
            continue
        names.add(word)
    return names


def test_the_promql_parser() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (service, le) (rate(x_seconds_bucket{a="b(c)"}[5m])))'
        " > 1e3 and on (service) group_left(route) max(up offset 5m) == 0"
        ' or sum without (le) ({__name__="y_total", service="auth"}) / ignoring(a) z:rec:rate5m'
    )
    assert metric_names(expr) == {"x_seconds_bucket", "up", "y_total", "z:rec:rate5m"}
    assert selectors('a{service="auth",s=~"5.."} + b') == [("a", {"service": "auth"})]


# ---- what the dashboards and rules use ------------------------------------------------


@dataclass(frozen=True)
class Use:
    where: str
    expr: str


def rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def panel_targets(panels: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for panel in panels:
        yield from ((panel.get("title", "?"), t) for t in panel.get("targets", []))
        yield from panel_targets(panel.get("panels", []))  # rows hold panels too


def uses() -> list[Use]:
    found = [Use(f"rule {r.get('alert') or r['record']}", r["expr"]) for r in rules()]
    for path in DASHBOARDS:
        board = json.loads(path.read_text())  # valid JSON, or this fails
        for title, target in panel_targets(board["panels"]):
            found.append(Use(f"{path.name}: {title}", target["expr"]))
        for variable in board.get("templating", {}).get("list", []):
            query = variable.get("query")
            if isinstance(query, dict):
                query = query.get("query")
            if variable.get("type") == "query" and isinstance(query, str):
                found.append(Use(f"{path.name}: ${variable['name']}", query))
    return found


# ---- scraping ----------------------------------------------------------------------------

Samples = dict[str, list[tuple[dict[str, str], float]]]  # sample name -> (labels, value)


def scrape(stack: Stack) -> dict[str, Samples]:
    out: dict[str, Samples] = {}
    for name in PROCESSES:
        response = httpx.get(f"{stack.url(name)}/metrics", timeout=10)
        assert response.status_code == 200, (name, response.text[:200])
        samples: Samples = {}
        for family in text_string_to_metric_families(response.text):
            for s in family.samples:
                samples.setdefault(s.name, []).append((s.labels, s.value))
        out[name] = samples
    return out


def total(scraped: dict[str, Samples], name: str, **labels: str) -> float:
    return sum(
        value
        for samples in scraped.values()
        for sample_labels, value in samples.get(name, [])
        if labels.items() <= sample_labels.items()
    )


# ---- traffic -------------------------------------------------------------------------------


def eventually(check: Callable[[], httpx.Response], status: int, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        response = check()
        if response.status_code == status or time.monotonic() >= deadline:
            return response
        time.sleep(0.1)


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


STDIN = ("--password-stdin",)


def start_admin_creation(stack: Stack, email: str) -> subprocess.Popen[str]:
    """auth's own operator command, started early: it runs while the traffic flows."""
    env = dict(stack.processes.specs["auth"].env)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # only gunicorn creates that directory
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.auth.manage", "create-admin", "--email", email, *STDIN],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
        text=True,
    )
    assert proc.stdin is not None
    proc.stdin.write(ADMIN_PASSWORD + "\n")
    proc.stdin.close()
    return proc


@dataclass
class Traffic:
    register_request_id: str
    me_request_id: str
    user_id: str
    email: str


def drive_traffic(stack: Stack) -> Traffic:
    gw = stack.gateway_url
    tag = uuid.uuid4().hex[:10]
    admin_email = f"obs-admin-{tag}@example.com"
    admin = start_admin_creation(stack, admin_email)
    # Our own client address (the gateway trusts X-Forwarded-For from 127.0.0.1): the
    # per-IP limits this test spends are not those of the other e2e tests.
    ip = f"198.51.100.{random.randint(1, 254)}"
    client = httpx.Client(base_url=gw, timeout=10, headers={"X-Forwarded-For": ip})
    with client:
        email = f"obs-{tag}@example.com"
        register_rid = f"obs-register-{tag}"
        registered = client.post(
            "/api/v1/auth/register",
            json={"email": email, "password": PASSWORD},
            headers={"X-Request-ID": register_rid},
        )
        assert registered.status_code == 202, registered.text
        assert registered.headers["x-request-id"] == register_rid
        (mail,) = stack.wait_for_mail(email, timeout=15)
        token = re.search(r"/verify-email\?token=([\w.~%-]+)", body_text(mail))
        assert token, "no verification link"
        verified = client.post("/api/v1/auth/verify-email", json={"token": token.group(1)})
        assert verified.status_code == 204, verified.text

        bad = client.post("/api/v1/auth/login", json={"email": email, "password": "wrong-1"})
        assert bad.status_code == 401, bad.text
        first = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert first.status_code == 200, first.text
        spent = first.json()["refresh_token"]
        rotated = client.post("/api/v1/auth/refresh", json={"refresh_token": spent})
        assert rotated.status_code == 200, rotated.text
        reused = client.post("/api/v1/auth/refresh", json={"refresh_token": spent})
        assert reused.status_code == 401, reused.text  # the family is revoked

        login = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        access = login.json()["access_token"]
        me_rid = f"obs-me-{tag}"
        me = eventually(
            lambda: client.get(
                "/api/v1/users/me",
                headers={"Authorization": f"Bearer {access}", "X-Request-ID": me_rid},
            ),
            200,
        )
        assert me.status_code == 200, me.text

        assert admin.wait(timeout=30) == 0, admin.stdout.read() if admin.stdout else ""
        admin_login = client.post(
            "/api/v1/auth/login", json={"email": admin_email, "password": ADMIN_PASSWORD}
        )
        assert admin_login.status_code == 200, admin_login.text
        admin_headers = {"Authorization": f"Bearer {admin_login.json()['access_token']}"}
        created = client.post(
            "/api/v1/catalog/products",
            json={
                "sku": f"OBS-{tag}",
                "name": "Observed widget",
                "price": "9.90",
                "currency": "EUR",
                "stock": 3,
                "status": "active",
            },
            headers=admin_headers,
        )
        assert created.status_code == 201, created.text
        product = f"/api/v1/catalog/products/{created.json()['id']}"
        for _ in range(2):  # a miss that fills the cache, then a hit
            assert client.get(product).status_code == 200
            assert client.get("/api/v1/catalog/products?limit=3").status_code == 200

        # Failed logins on an unknown address until the lockout answers 429.
        stranger = {"email": f"obs-nobody-{tag}@example.com", "password": "wrong-2"}
        statuses = [client.post("/api/v1/auth/login", json=stranger).status_code]
        while statuses[-1] == 401 and len(statuses) < 12:
            statuses.append(client.post("/api/v1/auth/login", json=stranger).status_code)
        assert statuses[-1] == 429, statuses
    return Traffic(register_rid, me_rid, str(claims(access)["sub"]), email)


# ---- logs ----------------------------------------------------------------------------------


def log_entries(stack: Stack, name: str) -> list[dict[str, Any]]:
    entries = []
    for line in stack.log(name).splitlines():
        if line.startswith("{"):
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue
    return entries


def wait_for_entry(
    stack: Stack, name: str, match: Callable[[dict[str, Any]], bool], timeout: float = 10.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in log_entries(stack, name) if match(e)]
        if found:
            return found[-1]
        if time.monotonic() >= deadline:
            raise AssertionError(f"no matching log line in {name}")
        time.sleep(0.1)


# ---- the test ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def observed(stack: Stack) -> Iterator[tuple[dict[str, Samples], dict[str, Samples], Traffic]]:
    before = scrape(stack)
    traffic = drive_traffic(stack)
    # The email job and the relays run in the background: let their counters land.
    deadline = time.monotonic() + 10
    while True:
        after = scrape(stack)
        moved = {n for n in TRAFFIC_DRIVEN if total(after, n) > total(before, n)}
        if moved == TRAFFIC_DRIVEN or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    yield before, after, traffic


def test_every_metric_a_dashboard_or_rule_uses_exists_and_moves(
    observed: tuple[dict[str, Samples], dict[str, Samples], Traffic],
) -> None:
    before, after, _ = observed
    used = uses()
    assert len(used) > 40 and len(DASHBOARDS) >= 6
    recorded = {r["record"] for r in rules() if "record" in r}
    exposed = {name for samples in after.values() for name in samples}
    needed = {n for u in used for n in metric_names(u.expr)} - recorded - PROMETHEUS_SERIES
    missing = sorted(
        (u.where, n) for u in used for n in metric_names(u.expr) if n in needed and n not in exposed
    )
    assert missing == [], missing
    # A `service` matcher names the process that must expose the metric.
    wrong_process = sorted(
        (u.where, name, labels["service"])
        for u in used
        for name, labels in selectors(u.expr)
        if name in needed
        and labels.get("service") in after
        and name not in after[labels["service"]]
    )
    assert wrong_process == [], wrong_process
    # The list of what must move cannot go stale: everything on it is in use.
    assert TRAFFIC_DRIVEN <= needed, TRAFFIC_DRIVEN - needed
    still = sorted(n for n in TRAFFIC_DRIVEN if total(after, n) <= total(before, n))
    assert still == [], still


def test_business_metrics_moved_by_label(
    observed: tuple[dict[str, Samples], dict[str, Samples], Traffic],
) -> None:
    before, after, _ = observed

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta("auth_logins_total", result="success", reason="ok") >= 3
    assert delta("auth_logins_total", result="failure", reason="bad_credentials") >= 2
    assert delta("auth_logins_total", result="failure", reason="locked") >= 1
    assert delta("auth_token_refreshes_total", result="success") >= 1
    assert delta("auth_token_refreshes_total", result="reuse_detected") >= 1
    assert delta("auth_refresh_token_reuse_total") >= 1
    assert delta("auth_registrations_total") >= 1
    assert delta("rate_limit_rejections_total", limit="auth_login_lockout") >= 1
    assert delta("cache_requests_total", cache="products", result="miss") >= 1
    assert delta("cache_requests_total", cache="products", result="hit") >= 1
    assert delta("cache_requests_total", cache="product_lists", result="hit") >= 1
    assert delta("emails_sent_total", template="verify_email") >= 1
    assert delta("gateway_upstream_responses_total", upstream="catalog", status_class="2xx") >= 5
    # Gauges of the platform: present in the processes that own them.
    for service in registry.names(api_only=True):
        assert after[service].get("db_pool_connections_in_use"), service
        assert after[service].get("outbox_backlog_messages"), service
    assert after["worker"].get("email_queue_depth")
    assert {labels["upstream"] for labels, _ in after["gateway"]["gateway_circuit_state"]} == {
        "auth",
        "users",
        "catalog",
    }


def test_no_label_takes_unbounded_values(
    observed: tuple[dict[str, Samples], dict[str, Samples], Traffic],
) -> None:
    _, after, traffic = observed
    for process, samples in after.items():
        for name, series in samples.items():
            for labels, _ in series:
                for key, value in labels.items():
                    where = (process, name, key, value)
                    assert traffic.user_id not in value and traffic.email not in value, where
                    # Routes are templates, never raw paths with ids in them.
                    assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-", value), where
                    if key == "route":
                        assert value.startswith("/") or value == "<unmatched>", where
        routes = {labels.get("route") for labels, _ in samples.get("http_requests_total", [])}
        assert len(routes) < 60, (process, routes)


def test_request_id_and_user_id_flow_through_the_logs(
    stack: Stack, observed: tuple[dict[str, Samples], dict[str, Samples], Traffic]
) -> None:
    traffic = observed[2]

    def access(rid: str, route: str) -> Callable[[dict[str, Any]], bool]:
        return lambda e: (
            e.get("logger") == "access" and e.get("request_id") == rid and e.get("route") == route
        )

    edge = wait_for_entry(stack, "gateway", access(traffic.me_request_id, "/api/v1/users/{path}"))
    served = wait_for_entry(stack, "users", access(traffic.me_request_id, "/api/v1/users/me"))
    for entry, service in ((edge, "gateway"), (served, "users")):
        assert entry["service"] == service
        assert entry["status"] == 200
        assert entry["user_id"] == traffic.user_id
        assert isinstance(entry["duration_ms"], int | float) and entry["duration_ms"] >= 0
    assert edge["duration_ms"] >= served["duration_ms"]  # the hop wraps the service

    rid = traffic.register_request_id
    registered = wait_for_entry(stack, "auth", access(rid, "/api/v1/auth/register"))
    assert registered["status"] == 202 and registered["service"] == "auth"
    assert "user_id" not in registered  # nobody is signed in on a registration
    sent = wait_for_entry(
        stack,
        "worker",
        lambda e: e.get("request_id") == rid and e.get("message") == "email sent",
    )
    assert sent["service"] == "worker" and sent["template"] == "verify_email"
    for name in PROCESSES:  # nothing secret in any line
        assert PASSWORD not in stack.log(name) and ADMIN_PASSWORD not in stack.log(name)


def test_dashboards_reference_only_exposed_or_recorded_metrics(
    observed: tuple[dict[str, Samples], dict[str, Samples], Traffic],
) -> None:
    _, after, _ = observed
    exposed = {name for samples in after.values() for name in samples}
    recorded = {r["record"] for r in rules() if "record" in r}
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        assert board["uid"] and board["title"] and board["panels"], path.name
        exprs = [t["expr"] for _, t in panel_targets(board["panels"])]
        assert exprs and all(isinstance(e, str) and e.strip() for e in exprs), path.name
        names = {n for e in exprs for n in metric_names(e)}
        assert names <= exposed | recorded | PROMETHEUS_SERIES, (
            path.name,
            names - exposed - recorded - PROMETHEUS_SERIES,
        )


# ---- tracing: off by default, on with OTEL_ENABLED ---------------------------------------


class OtlpReceiver:
    """A minimal OTLP/HTTP trace receiver (protobuf), enough to see what processes export."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.collect(body)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.end_headers()
                self.wfile.write(ExportTraceServiceResponse().SerializeToString())

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def collect(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        {
                            "service": resource.get("service.name"),
                            "name": span.name,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent": span.parent_span_id.hex(),
                            "attributes": {
                                a.key: a.value.string_value or a.value.int_value
                                for a in span.attributes
                            },
                        }
                    )


def test_tracing_is_off_by_default(stack: Stack) -> None:
    for name in PROCESSES:
        assert stack.processes.specs[name].env.get("OTEL_ENABLED") is None
    assert CommonSettings.model_fields["otel_enabled"].default is False


def test_one_setting_turns_on_one_trace_from_gateway_to_service_database_and_redis(
    stack: Stack, tmp_path: Path
) -> None:
    receiver = OtlpReceiver()
    receiver.thread.start()
    config = StackConfig(
        database_url=stack.config.database_url,
        redis_url=stack.config.redis_url,
        data_dir=tmp_path,
        ports={name: free_port() for name in DEFAULT_PORTS},
        default_concurrency=1,
        environment="test",
        graceful_timeout=2,
        only={"catalog", "gateway"},
        extra_env={
            **TEST_ENV,
            "OTEL_ENABLED": "true",  # the one setting
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within 0.1 s, not 5 s
            # These processes share the stack's database: no second relay or janitor.
            "CATALOG_BACKGROUND_TASKS": "false",
        },
    )
    supervisor = Supervisor(tmp_path / "logs", graceful_timeout=5.0)
    try:
        for spec in build_specs(config):
            supervisor.add(spec)
        supervisor.start_all(timeout=30)
        # A product nobody has: a Redis cache miss, then a PostgreSQL read (404).
        path = f"/api/v1/catalog/products/{uuid.uuid4()}"
        # (Until the gateway's first health poll has seen catalog it may answer 503.)
        response = eventually(lambda: httpx.get(f"{config.url('gateway')}{path}"), 404)
        assert response.status_code == 404, response.text
        deadline = time.monotonic() + 10
        while True:
            traces: dict[str, list[dict[str, Any]]] = {}
            for span in receiver.spans:
                traces.setdefault(span["trace_id"], []).append(span)
            ours = [
                spans
                for spans in traces.values()
                if {s["service"] for s in spans} == {"gateway", "catalog"}
                and any(s["attributes"].get("db.system") == "postgresql" for s in spans)
                and any(s["attributes"].get("db.system") == "redis" for s in spans)
            ]
            if ours or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        assert ours, [(s["service"], s["name"]) for s in receiver.spans]
        spans = ours[0]
        by_id = {s["span_id"]: s for s in spans}
        # The service's server span is a child of the gateway's outgoing (aiohttp) span.
        crossing = [
            s
            for s in spans
            if s["service"] == "catalog" and by_id.get(s["parent"], {}).get("service") == "gateway"
        ]
        assert crossing, [(s["service"], s["name"], s["parent"]) for s in spans]
    finally:
        supervisor.stop_all()
        receiver.server.shutdown()
