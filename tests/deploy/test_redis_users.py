"""Every process reaches Redis as its own ACL user (deploy/redis/users.acl), in compose and
in both Kubernetes overlays; the migration job gets no Redis credential at all. What each
user may do is tested against a real Redis in tests/security/test_redis_acl.py; that the
compose stack runs with the ACL, by tests/deploy/test_compose_up.py."""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.deploy.support import APPS, ROOT, kustomize

TEMPLATE = (ROOT / "deploy" / "redis" / "users.acl").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
ENV_EXAMPLE = dict(
    line.split("=", 1)
    for line in (ROOT / ".env.example").read_text().splitlines()
    if line and not line.startswith("#")
)


def acl_user_placeholder(name: str) -> str:
    """The password variable of `user <name>` in the template."""
    match = re.search(rf"^user {re.escape(name)} on #\{{\{{([A-Z0-9_]+)\}}\}}", TEMPLATE, re.M)
    assert match, f"no ACL user {name} with a hashed password in deploy/redis/users.acl"
    return match.group(1)


def test_the_template_has_one_user_per_process_and_nobody_logs_in_as_default() -> None:
    users = re.findall(r"^user (\S+)", TEMPLATE, re.M)
    assert sorted(users) == sorted({"default", "admin", *APPS})
    assert re.search(r"^user default off resetpass ", TEMPLATE, re.M)
    passwords = {acl_user_placeholder(name) for name in {"admin", *APPS}}
    assert len(passwords) == len(APPS) + 1  # no two users share a password


@pytest.mark.parametrize("name", APPS)
def test_compose_gives_each_process_its_own_redis_user(name: str) -> None:
    variable = acl_user_placeholder(name)
    url = COMPOSE[name]["environment"]["REDIS_URL"]
    assert url == f"redis://{name}:${{{variable}:?}}@redis:6379/0"
    # The redis container renders the ACL with that same variable; .env.example has it.
    assert variable in COMPOSE["redis"]["environment"]
    assert ENV_EXAMPLE[variable]


def test_compose_migrations_and_tools_get_no_redis_credential() -> None:
    assert "REDIS_URL" not in COMPOSE["migrate"]["environment"]
    redis = COMPOSE["redis"]
    assert "--aclfile" in " ".join(redis["command"]) and "requirepass" not in str(redis)
    assert redis["environment"]["REDISCLI_AUTH"] == "${REDIS_PASSWORD:?}"  # admin's
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "--user", "admin", "ping"]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_deployment_reads_its_own_redis_url_secret_key(overlay: str) -> None:
    docs = [d for d in yaml.safe_load_all(kustomize(overlay)) if d]
    keys = {}
    for doc in docs:
        if doc["kind"] not in {"Deployment", "Job"}:
            continue
        name = doc["metadata"]["name"]
        for container in doc["spec"]["template"]["spec"]["containers"]:
            env = {e["name"]: e for e in container.get("env", [])}
            assert not any("redis" in str(ref).lower() for ref in container.get("envFrom", [])), (
                name
            )
            if name == "migrate":
                assert "REDIS_URL" not in env
                continue
            ref = env["REDIS_URL"]["valueFrom"]["secretKeyRef"]
            keys[name] = ref["key"]
    assert keys == {name: f"redis-url-{name}" for name in APPS}
    if overlay == "dev":
        # The dev Secret's URLs name each process's ACL user with .env.example's password.
        secret = next(d for d in docs if d["kind"] == "Secret")
        for name in APPS:
            url = urlsplit(base64.b64decode(secret["data"][f"redis-url-{name}"]).decode())
            assert url.username == name
            assert url.password == ENV_EXAMPLE[acl_user_placeholder(name)]
