"""The one list of the stack's services: what the dev stack runs, where the gateway routes,
which routes it lets through without a token, which schemas migrations upgrade, and what
the tests start. Adding a service is its package, its migrations, one entry here and the
deploy files (docs/adding-a-service.md).

Plain data: this module imports no service, so anything may read it.
"""

from __future__ import annotations

from dataclasses import dataclass

GATEWAY_PORT = 8000


@dataclass(frozen=True, slots=True)
class PublicRoute:
    """Routes the gateway serves without a token: space-separated methods, a path regex."""

    methods: str
    path: str


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    port: int
    # Its PostgreSQL schema and Alembic environment (migrations/<schema>); None: no tables.
    schema: str | None
    # Path prefixes the gateway routes to it; none for a process with no public API.
    prefixes: tuple[str, ...] = ()
    public: tuple[PublicRoute, ...] = ()
    # What runs it: an app factory gunicorn serves, or a module `python -m` runs.
    factory: str | None = None
    module: str | None = None

    @property
    def env_url(self) -> str:
        """The variable that points the gateway at it (a comma-separated list of URLs)."""
        return f"{self.name.upper()}_URL"

    @property
    def default_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


_AUTH = "/api/v1/auth"

SERVICES: tuple[Service, ...] = (
    Service(
        "auth",
        8001,
        "auth",
        prefixes=(_AUTH, "/.well-known"),
        public=(
            PublicRoute(
                "POST", rf"{_AUTH}/(register|login|refresh|verify-email|verify-email/resend)"
            ),
            PublicRoute("POST", rf"{_AUTH}/password/(forgot|reset)"),
            # The auth service serves its JWKS on both paths, anonymously.
            PublicRoute("GET HEAD", rf"({_AUTH})?/\.well-known/jwks\.json"),
        ),
        factory="services.auth.app:create_app()",
    ),
    Service(
        "users",
        8002,
        "users",
        prefixes=("/api/v1/users",),
        factory="services.users.app:create_app()",
    ),
    Service(
        "catalog",
        8003,
        "catalog",
        prefixes=("/api/v1/catalog",),
        # Catalog reads are public (templates like /products/{product_id} match too).
        public=(PublicRoute("GET HEAD", r"/api/v1/catalog(/.*)?"),),
        factory="services.catalog.app:create_app()",
    ),
    # Health and metrics only: email jobs come from the queue, not over HTTP.
    Service("worker", 8004, "worker", module="services.worker"),
)

BY_NAME = {service.name: service for service in SERVICES}
# The services behind the gateway (an HTTP API under a path prefix).
API_SERVICES: tuple[Service, ...] = tuple(s for s in SERVICES if s.prefixes)
# Every Alembic environment, in the order migrations run.
SCHEMAS: tuple[str, ...] = tuple(s.schema for s in SERVICES if s.schema)
PUBLIC_ROUTES: tuple[PublicRoute, ...] = tuple(r for s in SERVICES for r in s.public)


def names(*, api_only: bool = False) -> tuple[str, ...]:
    return tuple(s.name for s in (API_SERVICES if api_only else SERVICES))
