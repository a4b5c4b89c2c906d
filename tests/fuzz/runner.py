"""Runs schemathesis' engine (what `st run` runs) and collects what it found.

The engine rather than the pytest plugin: `schemathesis.pytest.from_fixture` fails on
pytest 9.2 (it sets `Node._nodeid`, which pytest 9.2 no longer has), and the engine
runs every phase the CLI runs, stateful included, with the same checks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import schemathesis
import schemathesis.engine
from schemathesis import Case, GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events
from schemathesis.engine.recorder import ScenarioRecorder

from tests.fuzz.accounts import Credentials
from tests.support.stack import Stack

CONFIG = Path(__file__).with_name("schemathesis.toml")
# Random examples per operation and phase; the coverage phase adds its own fixed set.
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "10"))
# The coverage phase (schemathesis' fixed boundary cases) is most of a run's time: the
# suite leaves it to `make fuzz`, which runs every phase.
PHASES = os.environ.get("FUZZ_PHASES", "examples,fuzzing,stateful").split(",")


@dataclass(frozen=True)
class Finding:
    operation: str
    check: str
    title: str
    message: str
    curl: str
    status: int | None = None
    body: str = ""

    def __str__(self) -> str:
        return (
            f"{self.operation} [{self.check}] {self.title}\n{self.message}\n"
            f"  {self.curl}\n  -> {self.status} {self.body}"
        )


@dataclass
class Report:
    role: str
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    cases: int = 0
    operations: set[str] = field(default_factory=set)
    seconds: float = 0.0

    @property
    def distinct(self) -> list[Finding]:
        """One finding per operation, check and title (the first example of each)."""
        unique: dict[tuple[str, str, str], Finding] = {}
        for finding in self.findings:
            unique.setdefault((finding.operation, finding.check, finding.title), finding)
        return list(unique.values())

    def summary(self) -> str:
        return (
            f"fuzz as {self.role}: {len(self.operations)} operations, {self.cases} cases, "
            f"{len(self.distinct)} distinct findings, {len(self.errors)} errors, "
            f"{self.seconds:.0f} s (FUZZ_MAX_EXAMPLES={MAX_EXAMPLES}, phases {','.join(PHASES)})"
        )


def load_schema(stack: Stack) -> schemathesis.BaseSchema:
    """The gateway's merged document, every check on, valid and invalid data; the
    per-operation allowances (each with its reason) are in schemathesis.toml."""
    config = SchemathesisConfig.from_path(CONFIG)
    schema = schemathesis.openapi.from_url(f"{stack.gateway_url}/openapi.json", config=config)
    schema.config.update(base_url=stack.gateway_url, continue_on_failure=True)
    schema.config.phases.update(phases=PHASES)
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=MAX_EXAMPLES
    )
    return schema


def fuzz(stack: Stack, credentials: Credentials, role: str) -> Report:
    schema = load_schema(stack)

    class BearerToken:
        """Signs every example in; `Credentials.for_case` picks the token."""

        def get(self, case: Case, ctx: schemathesis.AuthContext) -> str:
            return credentials.for_case(case, role)

        def set(self, case: Case, data: str, ctx: schemathesis.AuthContext) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    # No caching by schemathesis: Credentials caches, and must see every example.
    schema.auth(refresh_interval=None)(BearerToken)
    report = Report(role)
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.NonFatalError):
            report.errors.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            report.errors.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            report.cases += len(event.recorder.cases)
            report.operations.add(event.recorder.label)
            report.findings.extend(_findings(event.recorder))
        elif isinstance(event, events.EngineFinished):
            report.seconds = event.running_time
            report.findings.extend(
                Finding(f.operation or "", "after_run", f.title, f.message, "")
                for f in event.failures
            )
    return report


def _findings(recorder: ScenarioRecorder) -> Iterator[Finding]:
    for case_id, nodes in recorder.checks.items():
        interaction = recorder.interactions.get(case_id)
        response = interaction.response if interaction else None
        for node in nodes:
            if node.status == Status.FAILURE and node.failure_info is not None:
                failure = node.failure_info.failure
                yield Finding(
                    operation=failure.operation or recorder.label,
                    check=node.name,
                    title=failure.title,
                    message=failure.message,
                    curl=node.failure_info.code_sample,
                    status=response.status_code if response else None,
                    body=_text(response.content if response else None)[:300],
                )


def _text(content: bytes | None) -> str:
    return content.decode(errors="replace") if content else ""
