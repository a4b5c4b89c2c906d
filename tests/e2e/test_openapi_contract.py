"""The live gateway's merged document (upstreams fetched over HTTP) keeps the
operationIds of the committed snapshot, and is the document `make clients` generates
from without servers (gateway.openapi.build_in_process)."""

from __future__ import annotations

import httpx
import pytest

from gateway.openapi import build_in_process
from tests.contract.snapshot import load, operation_ids, problems
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e


def test_live_document_keeps_the_snapshot_and_equals_the_in_process_one(stack: Stack) -> None:
    response = httpx.get(f"{stack.gateway_url}/openapi.json", timeout=10)
    assert response.status_code == 200
    live = response.json()
    found = problems(live, load())
    assert not found, "\n".join(found)
    built = build_in_process()
    assert operation_ids(built) == operation_ids(live)
    assert built["paths"] == live["paths"]
    assert built["components"] == live["components"]
    assert built["tags"] == live["tags"]
