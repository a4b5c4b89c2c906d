"""Cursors round-trip their values and refuse any tampering."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.common.errors import ProblemError
from services.common.pagination import CursorCodec, query_fingerprint

codec = CursorCodec("secret", "products")


def test_round_trip_keeps_types() -> None:
    values = [datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), Decimal("19.99"), uuid.uuid4(), "x", 7]
    cursor = codec.encode(query_id="q1", values=values, backwards=True)
    state = codec.decode(cursor, query_id="q1", key_count=5)
    assert state.values == values
    assert state.backwards is True


@pytest.mark.parametrize(
    "mangle",
    [
        lambda c: c[:-2] + ("AA" if not c.endswith("AA") else "BB"),  # signature
        lambda c: "x" + c,  # payload
        lambda c: c.split(".")[0],  # no signature
        lambda c: "%%%." + c.split(".")[1],  # not base64
        lambda c: "",
    ],
)
def test_tampered_cursor_is_400(mangle) -> None:
    cursor = codec.encode(query_id="q1", values=[1, "a"], backwards=False)
    with pytest.raises(ProblemError) as err:
        codec.decode(mangle(cursor), query_id="q1", key_count=2)
    assert err.value.status == 400


def test_forged_payload_with_old_signature_is_rejected() -> None:
    cursor = codec.encode(query_id="q1", values=[1, "a"], backwards=False)
    _, signature = cursor.split(".")
    forged = json.dumps({"q": "q1", "k": [999, "z"], "b": False}).encode()
    forged_b64 = base64.urlsafe_b64encode(forged).rstrip(b"=").decode()
    with pytest.raises(ProblemError):
        codec.decode(f"{forged_b64}.{signature}", query_id="q1", key_count=2)


def test_cursor_is_bound_to_its_query_and_list() -> None:
    q_price = query_fingerprint("price_asc", {"category": None})
    q_name = query_fingerprint("name", {"category": None})
    cursor = codec.encode(query_id=q_price, values=[1, "a"], backwards=False)
    with pytest.raises(ProblemError):
        codec.decode(cursor, query_id=q_name, key_count=2)
    with pytest.raises(ProblemError):
        CursorCodec("secret", "users").decode(cursor, query_id=q_price, key_count=2)
    with pytest.raises(ProblemError):
        CursorCodec("other-secret", "products").decode(cursor, query_id=q_price, key_count=2)
