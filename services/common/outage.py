"""A dependency that does not answer (PostgreSQL down or restarting, Redis down, a pool
with no connection to give) is an outage, not a bug: the answer is a fast 503
problem+json with `Retry-After`, and the log gets one warning line, not a traceback."""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

RETRY_AFTER_SECONDS = 2

# SQLSTATE classes of "the server cannot serve you now": 08 connection exception,
# 57P0x admin/crash shutdown and "the database system is starting up", 53300 too
# many connections, 57014 a statement cancelled at DB_STATEMENT_TIMEOUT (a lock held
# too long, an overloaded server: its transaction is rolled back, nothing half-written).
_UNAVAILABLE_SQLSTATES = ("08", "57P", "53300", "57014")

# Everything an outage can raise; the handler still checks each one (a DBAPIError may
# be a constraint violation, a bug).
OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    DBAPIError,
    PoolTimeoutError,
    ConnectionError,
    TimeoutError,
    RedisConnectionError,
    RedisTimeoutError,
)


def unavailable_dependency(exc: BaseException) -> str | None:
    """Which dependency (`database`, `redis`) `exc` says cannot answer now, else None."""
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
        return "redis"
    if isinstance(exc, PoolTimeoutError):
        return "database"
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return "database"
        state = getattr(exc.orig, "sqlstate", None) or ""
        if state.startswith(_UNAVAILABLE_SQLSTATES):
            return "database"
        cause = getattr(exc.orig, "__cause__", None)
        return "database" if isinstance(cause, (ConnectionError, TimeoutError)) else None
    # Raised by the driver while connecting (refused, reset, connect timeout).
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return "database"
    return None
