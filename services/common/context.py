"""Per-request context shared by logging, errors and outgoing calls."""

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
user_id_var: ContextVar[str | None] = ContextVar("user_id", default=None)
route_var: ContextVar[str | None] = ContextVar("route", default=None)
