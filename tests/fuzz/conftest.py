"""The fuzz stack: a real stack of its own (like the e2e one, `tests.support.stack`)
that schemathesis may flood and litter.

Not the shared e2e stack: the fuzz sends thousands of requests from 127.0.0.1, so the
rate limits must be out of reach (the e2e stack keeps production-like limits that
other tests rely on), and it leaves thousands of accounts, products and categories
behind that no other test should have to page through.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fuzz.accounts import Credentials
from tests.support.infra import Infra
from tests.support.stack import Stack, fresh_database, running_stack

# Limits stay on (their code path runs on every request), just out of reach.
FUZZ_ENV = {
    "GATEWAY_RATE_ANONYMOUS": "1000000/minute",
    "GATEWAY_RATE_USER": "1000000/minute",
    "GATEWAY_RATE_AUTH": "1000000/minute",
    "AUTH_RATE_LOGIN_IP": "1000000/minute",
    "AUTH_RATE_LOGIN_ACCOUNT": "1000000/minute",
    "AUTH_RATE_REGISTER_IP": "1000000/minute",
    "AUTH_RATE_EMAIL_IP": "1000000/minute",
    "AUTH_RATE_EMAIL_ACCOUNT": "1000000/minute",
}


@pytest.fixture(scope="session")
def fuzz_stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("fuzz-stack")
    database = fresh_database(infra, "fuzz")
    with running_stack(root, database, extra_env=FUZZ_ENV, label="fuzz stack") as built:
        yield built


@pytest.fixture(scope="session")
def credentials(fuzz_stack: Stack) -> Iterator[Credentials]:
    with Credentials(fuzz_stack) as creds:
        yield creds
