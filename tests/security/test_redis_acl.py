"""Issue 18: one Redis credential for every process, the internet-facing gateway included.
Each process now has its own ACL user (deploy/redis/users.acl, rendered by
deploy/redis/render-acl.sh). Against the real Redis: every process's own operations, run
through the project's code, succeed as that user; what it has no business doing (another
service's keys, another producer's streams, deleting revocations, FLUSHDB, CONFIG) is
refused with NOPERM.

ACL users are server-wide: each test creates them under a unique prefix and deletes them
in a finally. The tests use this xdist worker's Redis db, so the users also get SELECT
(the deployments use db 0 and never select; nothing else is added to the rules).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError, ResponseError
from saq.job import Status
from saq.types import WorkerInfo

from gateway.ratelimit import RateLimiter
from services.auth.ratelimit import Lockout
from services.auth.ratelimit import RateLimiter as AuthRateLimiter
from services.common.cache import Cache
from services.common.events import publish_event, stream_name
from services.common.jobs import email_queue, enqueue_email
from services.common.jwt import Principal
from services.common.leanredis import LeanRedis
from services.common.ratelimit import FIXED_WINDOW_HIT, Limit
from services.common.redis import create_redis
from services.common.revocation import is_revoked, revoke_session, revoke_user_tokens
from services.common.streams import StreamConsumer, ensure_groups
from services.worker.queue import create_queue
from services.worker.sampler import sample_event_lag, sample_queue

pytestmark = pytest.mark.usefixtures("infra")

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "redis" / "users.acl"
RENDER = ROOT / "deploy" / "redis" / "render-acl.sh"
PROCESSES = ("gateway", "auth", "users", "catalog", "worker")


def render(passwords: dict[str, str]) -> dict[str, str]:
    """The rendered ACL file, by user: {name: rules}."""
    env = {"PATH": os.environ["PATH"], **passwords}
    out = subprocess.run(
        ["sh", str(RENDER), str(TEMPLATE)], env=env, check=True, capture_output=True, text=True
    ).stdout
    users = {}
    for line in out.splitlines():
        word, name, rules = line.split(" ", 2)
        assert word == "user"
        users[name] = rules
    return users


@asynccontextmanager
async def acl_users() -> AsyncIterator[dict[str, str]]:
    """{process: REDIS_URL of its ACL user} on this worker's Redis db."""
    base = os.environ["REDIS_URL"]
    parts = urlsplit(base)
    prefix = f"acltest-{uuid.uuid4().hex[:8]}"
    passwords = {f"REDIS_{p.upper()}_PASSWORD": uuid.uuid4().hex for p in PROCESSES}
    passwords["REDIS_PASSWORD"] = uuid.uuid4().hex
    rules = render(passwords)
    assert set(rules) == {"default", "admin", *PROCESSES}
    admin = aioredis.Redis.from_url(base)
    created: list[str] = []
    try:
        for process in PROCESSES:
            name = f"{prefix}-{process}"
            await admin.execute_command("ACL", "SETUSER", name, *rules[process].split(), "+select")
            created.append(name)
        password = {p: passwords[f"REDIS_{p.upper()}_PASSWORD"] for p in PROCESSES}
        server = f"{parts.hostname}:{parts.port or 6379}{parts.path}"
        yield {p: f"redis://{prefix}-{p}:{password[p]}@{server}" for p in PROCESSES}
    finally:
        for name in created:
            await admin.execute_command("ACL", "DELUSER", name)
        # This test's email jobs and (unsigned) events, from this worker's db: later tests'
        # consumers must not meet them.
        keys = [key async for key in admin.scan_iter(match="saq:*")]
        if keys:
            await admin.delete(*keys)
        async for stream in admin.scan_iter(match="events:*", _type="stream"):
            entries: Any = await admin.xrange(stream)
            ids = [i for i, f in entries if f.get(b"request_id") == b"req-acl"]
            if ids:
                await admin.xdel(stream, *ids)
            for info in await admin.xinfo_groups(stream):
                if re.fullmatch(rb"(auth|users)-[0-9a-f]{8}", info["name"]):  # the tests' own
                    await admin.xgroup_destroy(stream, info["name"])
        await admin.aclose()


def principal(user_id: str, session_id: str) -> Principal:
    now = time.time()
    return Principal(
        user_id=user_id,
        role="user",
        session_id=session_id,
        token_id=uuid.uuid4().hex,
        issued_at=round(now - 1, 3),
        expires_at=int(now) + 900,
        email_verified=True,
    )


def outbox_row(topic: str, kind: str = "event", **payload: Any) -> Any:
    return SimpleNamespace(
        id=uuid.uuid4(),
        topic=topic,
        kind=kind,
        payload=payload,
        request_id="req-acl",
        created_at=datetime.now(UTC),
    )


async def refused(call: Awaitable[Any]) -> None:
    with pytest.raises(NoPermissionError):
        await call


async def refused_everywhere(redis: aioredis.Redis, *foreign_keys: str) -> None:
    """Server administration and the keys of other processes."""
    await refused(redis.flushdb())
    await refused(redis.flushall())
    await refused(redis.config_get("*"))
    await refused(redis.keys("*"))
    await refused(redis.execute_command("ACL", "LIST"))
    await refused(redis.execute_command("SCRIPT", "FLUSH"))
    await refused(redis.execute_command("CLIENT", "LIST"))
    await refused(redis.execute_command("MODULE", "LIST"))
    for key in foreign_keys:
        await refused(redis.get(key))


async def test_gateway_counts_its_limits_reads_revocations_and_nothing_else() -> None:
    async with acl_users() as urls:
        redis = create_redis(urls["gateway"])
        admin = aioredis.Redis.from_url(os.environ["REDIS_URL"])
        try:
            user_id, sid = str(uuid.uuid4()), str(uuid.uuid4())
            # Rate limits: the lean EVAL path (the usual one) and redis-py's EVALSHA path.
            limit = Limit.parse("anonymous", "3/minute")
            limiter = RateLimiter(redis, anonymous=limit, user=limit, auth=limit)
            try:
                decisions = [await limiter.hit(limit, "203.0.113.9") for _ in range(4)]
            finally:
                await limiter.close()
            # None would mean "Redis refused, failed open": each one was counted.
            assert [d.allowed if d else None for d in decisions] == [True, True, True, False]
            # redis-py's script object: EVALSHA, then EVAL (the path when REDIS_LEAN is off).
            script = redis.register_script(FIXED_WINDOW_HIT)
            count, ttl = await script(keys=["rl:gw:acl:" + user_id], args=[60_000])
            assert (count, 0 < ttl <= 60_000) == (1, True)
            # Revocations: read, as every request does.
            assert await is_revoked(redis, principal(user_id, sid)) is False
            await admin.set(f"revoked:sid:{sid}", b"1", ex=60)
            assert await is_revoked(redis, principal(user_id, sid)) is True
            assert await redis.ping() is True

            # Never a revocation written or deleted, never an event, never another cache.
            await refused(redis.delete(f"revoked:sid:{sid}"))
            await refused(revoke_user_tokens(redis, user_id))
            await refused(redis.set(f"revoked:user:{user_id}", "0"))
            await refused(
                redis.xadd(stream_name("user.role_changed"), {"topic": "user.role_changed"})
            )
            await refused(publish_event(redis, outbox_row("user.role_changed", role="admin")))
            await refused(redis.xrange(stream_name("user.role_changed")))
            # Its script cannot reach another key either: the script's own calls are checked.
            with pytest.raises(ResponseError, match=r"(?i)noperm|no permissions"):
                await redis.eval("return redis.call('DEL', KEYS[1])", 1, f"revoked:sid:{sid}")
            with pytest.raises(ResponseError, match=r"(?i)noperm|no permissions"):
                await redis.eval(FIXED_WINDOW_HIT, 1, "rl:auth:login:x", 60_000)
            await refused(redis.get("rl:auth:login:x"))
            await refused_everywhere(
                redis, "cache:profiles:v1:x", "cache:products:x", "saq:job:emails:x"
            )
            assert await admin.exists(f"revoked:sid:{sid}") == 1
        finally:
            await redis.aclose()
            await admin.aclose()


async def test_auth_limits_locks_revokes_publishes_consumes_and_enqueues_emails() -> None:
    async with acl_users() as urls:
        redis = create_redis(urls["auth"])
        users_redis = create_redis(urls["users"])
        queue = email_queue(urls["auth"])
        admin = aioredis.Redis.from_url(os.environ["REDIS_URL"])
        try:
            user_id, sid = str(uuid.uuid4()), str(uuid.uuid4())
            limiter = AuthRateLimiter(redis)
            login = Limit.parse("login_ip", "2/minute")
            assert [await limiter.hit(login, "198.51.100.7") for _ in range(3)][:2] == [None, None]
            assert await limiter.hit(login, "198.51.100.7") is not None
            lockout = Lockout(redis, threshold=1, base_seconds=60, max_seconds=600)
            assert await lockout.failed("victim@example.com") == 60
            assert (await lockout.retry_after("victim@example.com") or 0) > 0
            await lockout.succeeded("victim@example.com")
            assert await lockout.retry_after("victim@example.com") is None

            await revoke_session(redis, sid)
            await revoke_user_tokens(redis, user_id, at=time.time() - 5)
            assert await is_revoked(redis, principal(user_id, sid)) is True

            # Its own events out; users' events in, through its consumer group.
            await publish_event(redis, outbox_row("user.registered", user_id=user_id))
            # A group of this test's own (the ACL does not name groups): no other test's
            # entries are taken from the real "auth" group.
            group = f"auth-{uuid.uuid4().hex[:8]}"
            await ensure_groups(redis, ["user.deactivated", "user.role_changed"], group)
            row = outbox_row("user.deactivated", user_id=user_id)
            await publish_event(users_redis, row)
            seen: list[str] = []

            async def handle(event: Any) -> None:
                seen.append(event.id)

            consumer = StreamConsumer(
                redis,
                group=group,
                consumer="acl-test",
                handlers={"user.deactivated": handle, "user.role_changed": handle},
                block_ms=100,
            )
            try:
                assert await consumer.poll(100) >= 1
                assert await consumer.reclaim() == 0
                await consumer.sample_lag()  # the lag gauges: XINFO GROUPS
            finally:
                await consumer.redis.aclose()
            assert str(row.id) in seen

            # Email jobs: enqueued (once per outbox row), never read back or taken.
            row = outbox_row("email.verify", kind="email", to="someone@example.com")
            await enqueue_email(queue, row)
            await enqueue_email(queue, row)  # a re-relayed row: refused by saq, no error
            assert await admin.llen("saq:emails:queued") == 1
            await refused(redis.blmove("saq:emails:queued", "saq:emails:active", 1))
            await refused(redis.get(f"saq:job:emails:{row.id}"))
            # Not another producer's topic, not another group's streams.
            await refused(publish_event(redis, outbox_row("user.deleted", user_id=user_id)))
            await refused(publish_event(redis, outbox_row("product.updated")))
            await refused(redis.xreadgroup("auth", "x", {stream_name("product.updated"): ">"}))
            await refused(redis.delete(f"revoked:sid:{sid}"))
            await refused(queue.count("queued"))
            await refused_everywhere(redis, "cache:profiles:v1:x", "rl:gw:x", "cache:products:x")
        finally:
            await queue.disconnect()
            for client in (redis, users_redis, admin):
                await client.aclose()


async def test_users_caches_profiles_revokes_users_and_publishes_its_events() -> None:
    async with acl_users() as urls:
        redis = create_redis(urls["users"])
        reads = LeanRedis.for_client(redis, client_name="users-acl-test")
        cache = Cache(redis, "profiles", fast=reads)
        try:
            user_id, sid = str(uuid.uuid4()), str(uuid.uuid4())
            key = cache.key("v1", user_id)
            loads: list[int] = []

            async def loader() -> bytes:
                loads.append(1)
                return b'{"id":"%s"}' % user_id.encode()

            assert await cache.get_or_load(key, loader) == await cache.get_or_load(key, loader)
            assert loads == [1]  # the second read was a cache hit: GET over the lean client
            await cache.delete(key)
            assert await cache.get(key) is None
            assert cache.guard.available  # no Redis error along the way

            await revoke_user_tokens(redis, user_id, at=time.time())
            assert await is_revoked(redis, principal(user_id, sid)) is True
            group = f"users-{uuid.uuid4().hex[:8]}"  # not the real group: see the auth test
            await ensure_groups(redis, ["user.registered", "user.role_changed"], group)
            await publish_event(redis, outbox_row("user.role_changed", user_id=user_id))
            consumer = StreamConsumer(
                redis, group=group, consumer="acl-test", handlers={"user.role_changed": _noop}
            )
            try:
                assert await consumer.poll(100) >= 1
                await consumer.sample_lag()
            finally:
                await consumer.redis.aclose()

            await refused(revoke_session(redis, sid))  # sessions are auth's
            await refused(redis.delete(f"revoked:user:{user_id}"))
            await refused(publish_event(redis, outbox_row("user.registered", user_id=user_id)))
            await refused(redis.set("cache:products:x", b"1"))
            await refused(redis.set("rl:gw:x", 1))  # counted only, never set
            await refused_everywhere(redis, "cache:products:x", "rl:auth:x", "saq:emails:queued")
        finally:
            if reads is not None:
                await reads.close()
            await redis.aclose()


async def _noop(event: Any) -> None:
    return None


async def test_catalog_caches_products_and_publishes_product_events_only() -> None:
    async with acl_users() as urls:
        redis = create_redis(urls["catalog"])
        reads = LeanRedis.for_client(redis, client_name="catalog-acl-test")
        products = Cache(redis, "products", fast=reads)
        lists = Cache(redis, "product_lists", fast=reads)
        try:
            product_id = str(uuid.uuid4())

            async def page() -> bytes:
                return b'{"items":[]}'

            got = await lists.get_or_load_versioned("all", lists.key("p1"), page)
            assert got == b'{"items":[]}'
            assert (await lists.get_versioned("all", lists.key("p1")))[1] == b'{"items":[]}'
            await lists.bump("all")
            assert (await lists.get_versioned("all", lists.key("p1")))[1] is None
            key = products.key(product_id)
            await products.set(key, b"{}")
            assert await products.get(key) == b"{}"
            await products.delete(key)
            assert products.guard.available and lists.guard.available
            assert await is_revoked(redis, principal(str(uuid.uuid4()), product_id)) is False
            await publish_event(redis, outbox_row("product.updated", product_id=product_id))

            await refused(publish_event(redis, outbox_row("user.role_changed", role="admin")))
            await refused(revoke_user_tokens(redis, product_id))
            await refused(redis.delete(f"revoked:sid:{product_id}"))
            await refused(redis.set("cache:profiles:v1:x", b"1"))
            await refused_everywhere(redis, "cache:profiles:v1:x", "rl:gw:x", "saq:emails:queued")
        finally:
            if reads is not None:
                await reads.close()
            await redis.aclose()


async def test_worker_runs_the_email_queue_and_samples_streams_read_only() -> None:
    async with acl_users() as urls:
        settings = SimpleNamespace(
            redis_url=urls["worker"], redis_timeout=0.5, worker_sweep_abort_seconds=0.5
        )
        queue = create_queue(settings)  # type: ignore[arg-type]
        producer = email_queue(urls["auth"])
        auth_redis = create_redis(urls["auth"])
        redis = create_redis(urls["worker"])
        try:
            await queue.connect()
            # auth enqueues two email jobs; the worker takes them, retries one, finishes both.
            rows = [outbox_row("email.verify", kind="email", to=f"{i}@example.com") for i in "ab"]
            for row in rows:
                await enqueue_email(producer, row)
            first = await queue.dequeue(timeout=1)
            assert first is not None and first.key == str(rows[0].id)
            await queue.retry(first, error="smtp down")
            depth, _ = await sample_queue(queue, int(time.time() * 1000))
            assert depth == 2
            done = []
            for _ in range(20):  # the retry is scheduled a moment later: schedule() queues it
                await queue.schedule(lock=1)
                job = await queue.dequeue(timeout=0.5)
                if job is not None:
                    await queue.finish(job, Status.COMPLETE)
                    done.append(job.key)
                if len(done) == 2:
                    break
            assert sorted(done) == sorted(str(r.id) for r in rows)
            assert await queue.sweep(lock=1) == []
            worker_info: WorkerInfo = {"queue_key": "emails", "stats": None, "metadata": None}
            await queue.write_worker_info("acl-test", worker_info, ttl=5)
            info = await queue.info(jobs=True)
            assert info["queued"] == 0 and info["active"] == 0
            job = await queue.job(done[0])
            assert job is not None and job.status == Status.COMPLETE
            await job.refresh(0.2)  # job updates over pub/sub: PSUBSCRIBE saq:job:emails*

            # Lag gauges: every events:* stream and its groups, read-only.
            await publish_event(auth_redis, outbox_row("user.registered"))
            await ensure_groups(auth_redis, ["user.deactivated"], f"auth-{uuid.uuid4().hex[:8]}")
            assert await sample_event_lag(redis) >= 1

            await refused(publish_event(redis, outbox_row("user.role_changed", role="admin")))
            await refused(redis.xack(stream_name("user.deactivated"), "auth", "0-1"))
            await refused(redis.xgroup_destroy(stream_name("user.deactivated"), "auth"))
            await refused(revoke_user_tokens(redis, str(uuid.uuid4())))
            await refused(redis.mget("revoked:sid:x", "revoked:user:x"))
            await refused(redis.publish("events", "x"))
            await refused_everywhere(redis, "cache:profiles:v1:x", "rl:gw:x", "cache:products:x")
        finally:
            await queue.disconnect()
            await producer.disconnect()
            await auth_redis.aclose()
            await redis.aclose()


def test_the_aclfile_refuses_to_render_without_every_password() -> None:
    passwords = {f"REDIS_{p.upper()}_PASSWORD": "x" for p in PROCESSES}
    result = subprocess.run(
        ["sh", str(RENDER), str(TEMPLATE)],
        env={"PATH": os.environ["PATH"], **passwords},  # REDIS_PASSWORD (admin) missing
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "REDIS_PASSWORD is not set" in result.stderr
    # No plaintext password in a rendered file: only their SHA-256.
    rendered = render({**passwords, "REDIS_PASSWORD": "y", "REDIS_GATEWAY_PASSWORD": "s3cret"})
    assert all(" >" not in rules and "s3cret" not in rules for rules in rendered.values())
    assert rendered["default"].startswith("off resetpass ")  # nobody logs in as default
