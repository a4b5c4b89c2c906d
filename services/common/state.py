"""Per-process state, reached one way.

The kit's lifespan (services.common.app) builds the platform objects every service has:
`app.state.settings`, `redis`, `engine`, `session_factory`, `token_verifier`. Whatever
else a service keeps per process (its caches, hashers, key store...) is one typed object,
a dataclass built in the service's startup hook and registered with `provide(app, obj)`;
routes take it as a dependency (`Annotated[AuthContext, Depends(state_of(AuthContext))]`),
code that holds the app (consumers, background tasks, tests) calls `provided(app, cls)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fastapi import FastAPI, Request

T = TypeVar("T")
_KEY = "service"


def provide(app: FastAPI, value: T) -> T:
    setattr(app.state, _KEY, value)
    return value


def provided(app: FastAPI, kind: type[T]) -> T:
    """The service's state object; TypeError when the app holds none of this type."""
    value = getattr(app.state, _KEY, None)
    if not isinstance(value, kind):
        raise TypeError(f"{app.title} provides no {kind.__name__} (not started yet?)")
    return value


def state_of(kind: type[T]) -> Callable[[Request], T]:
    """A FastAPI dependency that hands a route the service's state object."""

    def dependency(request: Request) -> T:
        return provided(request.app, kind)

    dependency.__name__ = f"state_of_{kind.__name__}"
    return dependency
