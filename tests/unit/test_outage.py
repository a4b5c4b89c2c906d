"""Which errors mean "a dependency is down" (503) and which are bugs (500)."""

from __future__ import annotations

import errno
import socket

import asyncpg
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from sqlalchemy.exc import DBAPIError, IntegrityError

from services.common.outage import unavailable_dependency


class _Driver(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__("driver error")
        self.sqlstate = sqlstate


def _dbapi(sqlstate: str | None, *, invalidated: bool = False) -> DBAPIError:
    return DBAPIError("SELECT 1", None, _Driver(sqlstate), connection_invalidated=invalidated)


def test_database_outages_are_recognised() -> None:
    assert unavailable_dependency(_dbapi(asyncpg.CannotConnectNowError.sqlstate)) == "database"
    assert unavailable_dependency(_dbapi(asyncpg.AdminShutdownError.sqlstate)) == "database"
    assert unavailable_dependency(_dbapi("08006")) == "database"
    assert unavailable_dependency(_dbapi("53300")) == "database"
    # DB_STATEMENT_TIMEOUT reached (query_canceled)
    assert unavailable_dependency(_dbapi(asyncpg.QueryCanceledError.sqlstate)) == "database"
    assert unavailable_dependency(_dbapi(None, invalidated=True)) == "database"
    assert unavailable_dependency(ConnectionRefusedError(111, "refused")) == "database"
    assert unavailable_dependency(ConnectionResetError(104, "reset")) == "database"
    assert unavailable_dependency(TimeoutError()) == "database"
    # A restarting container's name does not resolve (the 500 seen under compose).
    assert unavailable_dependency(socket.gaierror(-2, "Name or service not known")) == "database"
    assert unavailable_dependency(OSError(errno.EHOSTUNREACH, "no route")) == "database"
    # asyncio.create_connection when every address of a name failed differently.
    both = OSError("Multiple exceptions: [Errno 111] ..., [Errno 99] ...")
    assert unavailable_dependency(both) == "database"


def test_redis_outages_are_recognised() -> None:
    assert unavailable_dependency(RedisConnectionError("closed")) == "redis"


def test_bugs_stay_bugs() -> None:
    unique = IntegrityError("INSERT", None, _Driver("23505"))
    assert unavailable_dependency(unique) is None
    assert unavailable_dependency(_dbapi("42P01")) is None  # undefined table
    assert unavailable_dependency(ResponseError("WRONGTYPE")) is None
    assert unavailable_dependency(ValueError("x")) is None
    assert unavailable_dependency(FileNotFoundError(2, "no such file")) is None
    assert unavailable_dependency(PermissionError(13, "denied")) is None
