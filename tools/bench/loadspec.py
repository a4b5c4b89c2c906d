"""What a load generator is asked to do and what it reports: shared by wrk and the
built-in Python generator so every scenario is described once."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Req:
    """One request template. `refresh` requests send a refresh token taken from an
    earlier response (each token is spent once); with none at hand they send the
    request at index `fallback` (a login) instead. In `unique` requests every `{{n}}` of
    the body becomes a value no other request of the run gets (e.g. a new SKU)."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    refresh: bool = False
    fallback: int = 0
    unique: bool = False


@dataclass(frozen=True)
class Load:
    """A closed-loop load: `connections` clients cycle through `requests` for `duration` s."""

    base_url: str
    requests: list[Req]
    connections: int
    duration: float
    threads: int = 2
    timeout: float = 5.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Load:
        reqs = [Req(**r) for r in data.pop("requests")]
        return cls(requests=reqs, **data)


@dataclass
class Result:
    """Latencies in milliseconds; `errors` are transport failures (connect/read/timeout)."""

    generator: str
    requests: int
    duration: float
    p50: float
    p95: float
    p99: float
    errors: int
    statuses: dict[int, int]

    @property
    def rps(self) -> float:
        return self.requests / self.duration if self.duration > 0 else 0.0

    @property
    def server_errors(self) -> int:
        return sum(n for code, n in self.statuses.items() if code >= 500)

    @property
    def client_errors(self) -> int:
        return sum(n for code, n in self.statuses.items() if 400 <= code < 500)

    @property
    def failed(self) -> int:
        """What counts against the error budget: transport errors plus every 5xx."""
        return self.errors + self.server_errors

    def count(self, status: int) -> int:
        return self.statuses.get(status, 0)
