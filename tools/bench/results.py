"""Rows of the report and the targets judged from them."""

from __future__ import annotations

from dataclasses import dataclass, field

from tools.bench.k6 import OpenResult
from tools.bench.loadspec import Result


@dataclass
class Row:
    group: str
    name: str
    result: Result | None = None
    baseline: str | None = None  # the name of the row this one is compared with
    reason: str | None = None  # why there is no result
    note: str = ""


@dataclass
class Target:
    name: str
    goal: str
    measured: str = ""
    passed: bool | None = None  # None: could not be judged (see measured)

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "MISS", None: "N/A"}[self.passed]


@dataclass
class Overload:
    """Logins at 2x what the hash pool served, reads at half their capacity (both
    measured first, in the same run), open loop; idle = the same reads alone."""

    mode: str = ""
    login_capacity: float = 0.0  # logins/s served (200) in a closed-loop storm
    read_capacity: float = 0.0  # cached reads/s through the gateway, closed loop
    login_rate: float = 0.0
    read_rate: float = 0.0
    write_rate: float = 0.0
    idle: OpenResult | None = None
    storm: OpenResult | None = None
    acked: int = 0  # registrations answered 202
    stored: int = 0  # of them, accounts in the database


@dataclass
class Knee:
    # (arrival rate req/s, result, writes acknowledged, writes stored) per step
    steps: list[tuple[int, Result, int, int]] = field(default_factory=list)
    knee: int | None = None
    mode: str = ""
    dropped: dict[int, int] = field(default_factory=dict)  # per rate: iterations not started


@dataclass
class Report:
    generator: str
    settings: dict[str, str]
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    knee: Knee = field(default_factory=Knee)
    overload: Overload = field(default_factory=Overload)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def get(self, name: str) -> Result | None:
        return next((r.result for r in self.rows if r.name == name), None)
