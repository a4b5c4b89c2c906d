"""Property-based fuzzing of the whole API through the gateway, with schemathesis.

The schema is the gateway's merged /openapi.json (auth, users, catalog). Every
operation is fuzzed signed in as a normal user and, separately, as an admin, with
every check schemathesis has (no 5xx, response schema, documented status codes,
content types and headers, negative data rejected, positive data accepted, auth not
ignored, ...), in every phase (explicit examples, coverage of boundaries, random
fuzzing, stateful sequences through inferred links), with valid and invalid data.

Budget: FUZZ_MAX_EXAMPLES (default in tests.fuzz.runner); `make fuzz` raises it.
"""

from __future__ import annotations

import pytest

from tests.fuzz.accounts import Credentials
from tests.fuzz.runner import Report, fuzz
from tests.support.stack import Stack

# One worker runs both (they share the fuzz stack); e2e: real processes.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("fuzz")]


def _assert_clean(report: Report) -> None:
    print(report.summary())
    assert report.operations, "the merged schema had no operations"
    problems = [str(f) for f in report.distinct] + report.errors
    assert not problems, f"{report.summary()}\n\n" + "\n\n".join(problems)


def test_fuzz_as_user(fuzz_stack: Stack, credentials: Credentials) -> None:
    _assert_clean(fuzz(fuzz_stack, credentials, "user"))


def test_fuzz_as_admin(fuzz_stack: Stack, credentials: Credentials) -> None:
    _assert_clean(fuzz(fuzz_stack, credentials, "admin"))
