"""A dependency that does not answer (PostgreSQL down or restarting, Redis down, a pool
with no connection to give) is an outage, not a bug: the answer is a fast 503
problem+json with `Retry-After`, and the log gets one warning line, not a traceback."""

from __future__ import annotations

import errno
import socket

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
# be a constraint violation, an OSError a missing file: bugs).
OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    DBAPIError,
    PoolTimeoutError,
    OSError,  # ConnectionError, TimeoutError, socket.gaierror...
    RedisConnectionError,
    RedisTimeoutError,
)

# A server that cannot be reached, besides refused/reset/aborted (ConnectionError) and
# timed out (TimeoutError): its name does not resolve (a container being restarted has no
# DNS entry), or there is no route to it.
_UNREACHABLE_ERRNOS = frozenset(
    {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN}
)


def unreachable(exc: BaseException) -> bool:
    """Whether `exc` is a failure to reach a server over the network (not a bug)."""
    if isinstance(exc, (ConnectionError, TimeoutError, socket.gaierror, socket.herror)):
        return True
    if not isinstance(exc, OSError):
        return False
    if exc.errno in _UNREACHABLE_ERRNOS:
        return True
    # asyncio's create_connection when every address of a name failed differently
    # (localhost: ::1 and 127.0.0.1 both refused) raises a bare OSError with no errno.
    return type(exc) is OSError and exc.errno is None and str(exc).startswith("Multiple exc")


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
        return "database" if cause is not None and unreachable(cause) else None
    # Raised by asyncpg while connecting (refused, reset, unresolvable, connect timeout):
    # SQLAlchemy passes what is not a DB-API error through unwrapped. redis-py wraps its
    # own in RedisConnectionError/RedisTimeoutError (above).
    if unreachable(exc):
        return "database"
    return None
