"""The real stack for end-to-end tests (built by `tests.support.stack`): every service
that exists, under gunicorn, on free ports, with an SMTP sink whose maildir the tests
read, its own database (`<test db>_e2e`) and its own Redis server. One stack per
session, shared by every e2e test: tests that kill processes use `tests/faults`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.infra import Infra
from tests.support.stack import Stack, fresh_database, running_stack

__all__ = ["Stack"]


@pytest.fixture(scope="session")
def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("e2e-stack")
    with running_stack(root, fresh_database(infra, "e2e"), label="e2e stack") as built:
        yield built
